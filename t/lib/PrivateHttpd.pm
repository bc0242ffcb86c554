package PrivateHttpd;
# A private httpd a test starts, stops and restarts itself, for what the
# suite's shared server cannot show (graceful restarts, drain deadlines in
# real time, a stop): the suite's MPM, the module just built, a ServerRoot
# of its own under t/logs/NAME and a free port on 127.0.0.1.
#
#   my $h = PrivateHttpd->new('keys-life');
#   $h->write_conf($h->head . "StartServers 2\n...");
#   $h->start or BAIL_OUT(...);  ... $h->get('/path') ... $h->doc ...
#   $h->graceful; $h->stop;      (stop also runs when the test ends)

use strict;
use warnings FATAL => 'all';

use Exporter 'import';
use File::Path qw(make_path remove_tree);
use File::Spec;
use IO::Socket::INET;
use JSON::PP ();
use LWP::UserAgent;
use Test::More ();
use Time::HiRes ();
use Apache::Test ();
use AffinityTest qw(log_lines wait_until);

our @EXPORT_OK = qw(free_port);

# A port nothing listens on now (bound and let go).
sub free_port {
    for my $try (1 .. 10) {
        my $sock = IO::Socket::INET->new(LocalAddr => '127.0.0.1', Listen => 1, ReuseAddr => 1);
        return $sock->sockport if $sock;
        Time::HiRes::sleep(0.2);
    }
    die "no free port on 127.0.0.1\n";
}

my @running;     # stopped when the test ends, in the process that made them

# new(NAME, timeout => seconds for the user agent (10), fresh => 1 to empty
# the folder first, so that its logs hold this run only)
sub new {
    my ($class, $name, %opt) = @_;
    my $apxs = Apache::Test::vars('apxs');
    chomp(my $libexec = `$apxs -q LIBEXECDIR`);
    my $dir = File::Spec->rel2abs(Apache::Test::vars('t_logs') . "/$name");
    remove_tree($dir) if $opt{fresh};
    make_path($dir);
    my $mpm = 'event';
    for my $line (log_lines('../conf/httpd.conf')) {
        $mpm = $1 if $line =~ /LoadModule mpm_(\w+)_module/;
    }
    my $self = bless {
        httpd   => Apache::Test::vars('httpd'),
        libexec => $libexec,
        module  => File::Spec->rel2abs(Apache::Test::vars('serverroot') . '/../.libs/mod_affinity.so'),
        dir     => $dir,
        mpm     => $mpm,
        port    => free_port(),
        ua      => LWP::UserAgent->new(keep_alive => 0, timeout => $opt{timeout} // 10),
        json    => JSON::PP->new,
        owner   => $$,
    }, $class;
    push @running, $self;
    return $self;
}

sub dir     { return $_[0]{dir} }
sub port    { return $_[0]{port} }
sub mpm     { return $_[0]{mpm} }
sub libexec { return $_[0]{libexec} }
sub ua      { return $_[0]{ua} }

# The first lines of every private configuration: the server's own paths,
# the MPM, mod_affinity and mod_proxy's balancer, then the modules named in
# @more ("headers" loads mod_headers.so).
sub head {
    my ($self, @more) = @_;
    my ($dir, $lib, $mpm) = @$self{qw(dir libexec mpm)};
    my $text = <<"EOF";
ServerRoot "$dir"
ServerName 127.0.0.1
Listen 127.0.0.1:$self->{port}
PidFile "$dir/httpd.pid"
ErrorLog "$dir/error_log"
DefaultRuntimeDir "$dir"
LoadModule mpm_${mpm}_module $lib/mod_mpm_${mpm}.so
LoadModule affinity_module $self->{module}
LoadModule authz_core_module $lib/mod_authz_core.so
LoadModule proxy_module $lib/mod_proxy.so
LoadModule proxy_http_module $lib/mod_proxy_http.so
LoadModule proxy_balancer_module $lib/mod_proxy_balancer.so
LoadModule slotmem_shm_module $lib/mod_slotmem_shm.so
LoadModule lbmethod_byrequests_module $lib/mod_lbmethod_byrequests.so
EOF
    $text .= "LoadModule ${_}_module $lib/mod_$_.so\n" for @more;
    return $text;
}

sub write_conf {
    my ($self, $text) = @_;
    open my $fh, '>', "$self->{dir}/httpd.conf" or die "$self->{dir}/httpd.conf: $!";
    print $fh $text;
    close $fh;
}

sub url { return "http://127.0.0.1:$_[0]{port}$_[1]" }

sub get {
    my ($self, $path, @headers) = @_;
    return $self->{ua}->get($self->url($path), @headers);
}

# httpd -f its configuration with @args; true when httpd exited 0.
sub run {
    my ($self, @args) = @_;
    my $out = `$self->{httpd} -f $self->{dir}/httpd.conf @args 2>&1`;
    Test::More::diag("httpd @args: $out") if $?;
    return !$?;
}

# The status page in JSON ($query appended: "&member=..."), or undef.
sub doc {
    my ($self, $query) = @_;
    my $res = $self->get('/affinity-status?format=json' . ($query // ''));
    return undef unless $res->is_success;
    my $d = eval { $self->{json}->decode($res->content) };
    Test::More::diag("not JSON: $@") unless $d;
    return $d;
}

sub generation {
    my $d = $_[0]->doc;
    return $d ? $d->{server}{generation} : -1;
}

# Started when the status page answers; three tries.
sub start {
    my ($self) = @_;
    for my $try (1 .. 3) {
        return 1 if $self->run('-k', 'start') && wait_until(20, sub { defined $self->doc });
        Test::More::diag(`tail -n 5 $self->{dir}/error_log`);
        $self->stop;
        Time::HiRes::sleep(1);
    }
    return 0;
}

# A graceful restart is done when the new generation answers.
sub graceful {
    my ($self) = @_;
    my $before = $self->generation;
    $self->run('-k', 'graceful');
    return wait_until(20, sub { $self->generation > $before });
}

# Stopped when the pid file is gone and nothing answers on the port.
sub stop {
    my ($self) = @_;
    return 1 unless -f "$self->{dir}/httpd.pid";
    $self->run('-k', 'stop');
    return wait_until(20, sub {
        !-f "$self->{dir}/httpd.pid"
            && !IO::Socket::INET->new(PeerAddr => "127.0.0.1:$self->{port}", Timeout => 1)
    });
}

END {
    local $?;           # not the test's exit status
    $_->stop for grep { $_->{owner} == $$ } @running;
}

1;
