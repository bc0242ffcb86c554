package LearnHarness;
# Learn mode outside Apache::Test's own server: private memcached and
# redis-server instances on free 127.0.0.1 ports, and private httpd front
# ends (any MPM, any AffinityStore) with their own member vhosts, started,
# restarted and stopped by the test.  Used by t/learn_*.t, bench/run and
# tools/reliability.  Everything listens on 127.0.0.1 and everything started
# here is stopped by its own pid.

use strict;
use warnings;

use File::Path qw(make_path);
use IO::Socket::INET;
use LWP::UserAgent;
use HTTP::Request::Common ();
use Time::HiRes qw(sleep time);

our $LAST_ERROR = '';

# Never the same port twice in one test: the kernel may hand a closed port
# out again, and two equal Listen lines stop httpd (-t too) before the
# check a test is after.
my %ports_given;
sub free_port {
    for (1 .. 50) {
        my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                      Listen => 1, ReuseAddr => 1) or die "no free port: $!";
        my $p = $s->sockport;
        close $s;
        next if $ports_given{$p}++;
        return $p;
    }
    die "no free port not already given out";
}

sub port_open {
    my ($port) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Timeout => 1);
    return $s ? 1 : 0;
}

sub wait_for {
    my ($seconds, $check) = @_;
    my $end = time + $seconds;
    while (time < $end) {
        return 1 if $check->();
        sleep 0.05;
    }
    return $check->() ? 1 : 0;
}

# ---- stores -----------------------------------------------------------------

# Which store daemons this machine has: the tests skip (and say so) when the
# packages could not be installed.
sub have_memcached { return -x '/usr/bin/memcached' }
sub have_redis { return -x '/usr/bin/redis-server' }

# A store daemon: { kind, port, pid, spec }.  spec is the AffinityStore
# argument.  $port reuses a port (a restart after kill).
sub start_store {
    my ($kind, $dir, $port) = @_;
    $port //= free_port();
    make_path($dir);
    my @cmd;
    if ($kind eq 'memcache') {
        @cmd = ('/usr/bin/memcached', '-l', '127.0.0.1', '-p', $port, '-U', '0',
                '-m', '64', '-t', '2');
        push @cmd, '-u', 'nobody' if $> == 0;
    }
    elsif ($kind eq 'redis') {
        @cmd = ('/usr/bin/redis-server', '--bind', '127.0.0.1', '--port', $port,
                '--save', '', '--appendonly', 'no', '--dir', $dir,
                '--protected-mode', 'no', '--daemonize', 'no');
    }
    else {
        die "unknown store $kind";
    }
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        open STDOUT, '>>', "$dir/$kind.log";
        open STDERR, '>&', \*STDOUT;
        exec @cmd or exit 127;
    }
    wait_for(10, sub { port_open($port) }) or die "$kind did not start on $port";
    return { kind => $kind, port => $port, pid => $pid, dir => $dir,
             spec => "$kind:127.0.0.1:$port" };
}

sub stop_store {
    my ($st) = @_;
    return unless $st && $st->{pid};
    kill 'KILL', $st->{pid};
    waitpid $st->{pid}, 0;
    $st->{pid} = undef;
}

sub restart_store {
    my ($st) = @_;
    my $new = start_store($st->{kind}, $st->{dir}, $st->{port});
    $st->{pid} = $new->{pid};
}

# ---- front ends -------------------------------------------------------------

sub apxs_q {
    my ($var) = @_;
    my $apxs = $ENV{APXS} || (grep { -x } map { "$_/apxs" } split /:/, $ENV{PATH})[0]
        || '/usr/bin/apxs';
    chomp(my $v = `$apxs -q $var`);
    return $v;
}

# AFFINITY_HTTPD: another httpd to run (tools/reliability --asan: a wrapper
# that preloads the ASan runtime into httpd only)
sub httpd_bin {
    return $ENV{AFFINITY_HTTPD} if $ENV{AFFINITY_HTTPD};
    my $sbin = apxs_q('SBINDIR');
    my $name = apxs_q('TARGET') || 'apache2';
    return "$sbin/$name";
}

# A front end: { dir, port, members => { m1 => port, ... }, pid_file, conf }
# %o: module (path of mod_affinity.so), mpm (event|prefork), store (spec or
# undef: the default), members (count, default 3), timeout
# (AffinityStoreTimeout), extra (config lines), salt, loglevel,
# skip_modules (modules not to load), external ({ route => port } of members
# running elsewhere), cookie (NAME, default SID).
sub frontend {
    my (%o) = @_;
    my $dir = $o{dir} or die 'dir';
    make_path("$dir/htdocs", "$dir/logs");
    open my $h, '>', "$dir/htdocs/hello.txt" or die; print $h "hello\n"; close $h;
    my $libexec = apxs_q('LIBEXECDIR');
    my $mpm = $o{mpm} || 'event';
    my $port = free_port();
    my $n = $o{members} || 3;
    # external: members that run elsewhere ({ route => port }): no vhosts
    my %members = $o{external} ? %{ $o{external} } : map { ("m$_" => free_port()) } 1 .. $n;
    my %vhosts = $o{external} ? () : %members;
    my @c = (
        "ServerRoot \"$dir\"", 'ServerName 127.0.0.1', "PidFile \"$dir/logs/httpd.pid\"",
        "ErrorLog \"$dir/logs/error_log\"", "LogLevel " . ($o{loglevel} || 'warn'),
        "DefaultRuntimeDir \"$dir/logs\"", "Mutex file:$dir/logs default",
        "LoadModule mpm_${mpm}_module $libexec/mod_mpm_$mpm.so",
        (map { "LoadModule ${_}_module $libexec/mod_$_.so" }
             grep { my $m = $_; !grep { $_ eq $m } @{ $o{skip_modules} || [] } }
             qw(authz_core headers proxy proxy_http proxy_balancer
                slotmem_shm lbmethod_byrequests socache_shmcb socache_memcache
                socache_redis)),
        "LoadModule affinity_module $o{module}",
        ($> == 0 ? ('User nobody', 'Group nogroup') : ()),
        "Listen 127.0.0.1:$port",
        (map { "Listen 127.0.0.1:$vhosts{$_}" } sort keys %vhosts),
        'LogFormat "%U%q %>s status=%{AFFINITY_STATUS}e worker=%{BALANCER_WORKER_NAME}e" learn',
        "CustomLog \"$dir/logs/access_log\" learn",
        "DocumentRoot \"$dir/htdocs\"",
        'KeepAliveTimeout 2',
        ($mpm eq 'prefork' ? ('StartServers 4', 'MaxRequestWorkers 32', 'ServerLimit 32')
                           : ('StartServers 2', 'ThreadsPerChild 16', 'MaxRequestWorkers 64')),
        ($o{store} ? "AffinityStore $o{store}" : ()),
        # the members: they send back the request's X-Set1..4 as Set-Cookie
        # and say who they are
        (map { my $m = $_; (
            "<VirtualHost 127.0.0.1:$members{$m}>",
            "    DocumentRoot \"$dir/htdocs\"",
            "    Header always set X-Backend $m",
            '    Header always set X-Seen-Cookie "expr=%{req:Cookie}"',
            (map { "    Header always add Set-Cookie \"expr=%{req:X-Set$_}\" \"expr=-n %{req:X-Set$_}\"" } 1 .. 4),
            '</VirtualHost>') } sort keys %vhosts),
        '<Location /balancer-manager>', '    SetHandler balancer-manager', '</Location>',
        'ProxyPass /balancer-manager !',
        '<Proxy "balancer://app">',
        (map { "    BalancerMember \"http://127.0.0.1:$members{$_}\" route=$_" } sort keys %members),
        '    ProxySet lbmethod=affinity',
        '    AffinityMode learn ' . ($o{cookie} || 'SID'),
        '    AffinitySalt ' . ($o{salt} // 'shared-salt'),
        ($o{timeout} ? "    AffinityStoreTimeout $o{timeout}" : ()),
        '</Proxy>',
        'ProxyPass "/app/" "balancer://app/"',
        'Header set X-Affinity-Status "%{AFFINITY_STATUS}e" env=AFFINITY_STATUS',
        @{ $o{extra} || [] },
    );
    my $conf = "$dir/httpd.conf";
    open my $fh, '>', $conf or die "$conf: $!";
    print $fh join("\n", @c), "\n";
    close $fh;
    if ($> == 0) {
        system('chown', '-R', 'nobody:nogroup', "$dir/logs");
    }
    return { dir => $dir, port => $port, members => \%members, conf => $conf,
             pid_file => "$dir/logs/httpd.pid", mpm => $mpm };
}

sub httpd_run {
    my ($fe, @args) = @_;
    my $bin = httpd_bin();
    my $out = `$bin -f $fe->{conf} @args 2>&1`;
    return ($? >> 8, $out);
}

sub pid_of {
    my ($fe) = @_;
    open my $fh, '<', $fe->{pid_file} or return undef;
    my $pid = <$fh>;
    chomp $pid if defined $pid;
    return $pid;
}

sub generations {
    my ($fe) = @_;
    open my $fh, '<', "$fe->{dir}/logs/error_log" or return 0;
    return scalar grep { /resuming normal operations/ } <$fh>;
}

sub start {
    my ($fe) = @_;
    my $before = generations($fe);
    my ($rc, $out) = httpd_run($fe, '-k', 'start');
    if ($rc) {
        $LAST_ERROR = $out;
        return 0;
    }
    return wait_for(15, sub { generations($fe) > $before && port_open($fe->{port}) });
}

# SIGUSR1, then wait for the new generation to be up
sub graceful {
    my ($fe) = @_;
    my $before = generations($fe);
    kill 'USR1', pid_of($fe);
    return wait_for(15, sub { generations($fe) > $before });
}

sub stop {
    my ($fe) = @_;
    my $pid = pid_of($fe) or return;
    kill 'TERM', $pid;
    wait_for(15, sub { !kill(0, $pid) });
    unlink $fe->{pid_file};
}

sub error_log {
    my ($fe) = @_;
    open my $fh, '<', "$fe->{dir}/logs/error_log" or return '';
    local $/;
    return <$fh>;
}

# ---- requests ---------------------------------------------------------------

my $UA = LWP::UserAgent->new(timeout => 10, keep_alive => 0);

sub url { my ($fe, $path) = @_; return "http://127.0.0.1:$fe->{port}$path" }

sub get {
    my ($fe, $path, @headers) = @_;
    return $UA->get(url($fe, $path), @headers);
}

sub backend { return $_[0]->header('X-Backend') // '' }
sub status { return $_[0]->header('X-Affinity-Status') // '' }

# A balancer-manager edit of member $m (m1..), as the manager's form does it
sub edit {
    my ($fe, $m, %params) = @_;
    my $page = $UA->get(url($fe, '/balancer-manager'))->content;
    my ($nonce) = $page =~ /b=app&amp;nonce=([0-9a-f-]+)/ or die 'no nonce';
    my %w = $m ? (w => "http://127.0.0.1:$fe->{members}{$m}") : ();
    my $res = $UA->request(HTTP::Request::Common::POST(
        url($fe, '/balancer-manager'),
        [ b => 'app', nonce => $nonce, %w, %params ],
        Referer => "http://127.0.0.1/balancer-manager"));
    die 'balancer-manager: ' . $res->status_line unless $res->is_success;
}

# A new session learned on member $want (any member when undef): the value
# and the member.  New sessions rotate by lbfactor, so a few tries suffice.
sub learn_session {
    my ($fe, $value, $want, $path) = @_;
    $path //= '/app/hello.txt';
    for (1 .. 12) {
        my $r = get($fe, $path, 'X-Set1' => "SID=$value; Path=/; HttpOnly");
        return backend($r) if !defined $want || backend($r) eq $want;
    }
    return undef;
}

1;
