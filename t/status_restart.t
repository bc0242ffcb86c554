# affinity-status counters across restarts, on a private httpd this test
# starts (same MPM as the suite, members = the suite's backend vhosts):
# kept across graceful restarts, also when members are reordered or a
# balancer is added (a further shared segment), zero after a full stop and
# start; and the page of a server with no affinity balancer.
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use File::Path qw(make_path remove_tree);
use File::Spec;
use File::Temp ();
use IO::Socket::INET;
use JSON::PP ();
use LWP::UserAgent;
use lib 't/lib';
use AffinityTest;

plan tests => 25;

my $json = JSON::PP->new;
my $httpd = Apache::Test::vars('httpd');
my $apxs = Apache::Test::vars('apxs');
chomp(my $libexec = `$apxs -q LIBEXECDIR`);
my $module = File::Spec->rel2abs(Apache::Test::vars('serverroot') . '/../.libs/mod_affinity.so');
my $dir = File::Spec->rel2abs(Apache::Test::vars('t_logs') . '/status-restart');
# an empty folder: the checks below read this run's error_log only (ErrorLog
# appends; a log left by an earlier run, e.g. the other MPM's pass, would
# carry its "2 segment(s)" line into the one-segment check)
remove_tree($dir);
make_path($dir);
my $mpm = 'event';
for my $line (log_lines('../conf/httpd.conf')) {
    $mpm = $1 if $line =~ /LoadModule mpm_(\w+)_module/;
}
my $port;
for my $try (1 .. 10) {
    my $sock = IO::Socket::INET->new(LocalAddr => '127.0.0.1', Listen => 1, ReuseAddr => 1);
    if ($sock) {
        $port = $sock->sockport;
        last;
    }
    select(undef, undef, undef, 0.2);
}
die "no free port on 127.0.0.1\n" unless $port;
my (@b);
for my $n (1 .. 3) {
    push @b, 'http://127.0.0.1:' . backend_port("backend$n");
}
my $ua = LWP::UserAgent->new(keep_alive => 0, timeout => 10);

sub write_conf {
    my (@balancers) = @_;
    open my $fh, '>', "$dir/httpd.conf" or die "$dir/httpd.conf: $!";
    print $fh <<"EOF";
ServerRoot "$dir"
ServerName 127.0.0.1
Listen 127.0.0.1:$port
PidFile "$dir/httpd.pid"
ErrorLog "$dir/error_log"
DefaultRuntimeDir "$dir"
LogLevel warn affinity:debug
LoadModule mpm_${mpm}_module $libexec/mod_mpm_${mpm}.so
LoadModule affinity_module $module
LoadModule authz_core_module $libexec/mod_authz_core.so
LoadModule proxy_module $libexec/mod_proxy.so
LoadModule proxy_http_module $libexec/mod_proxy_http.so
LoadModule proxy_balancer_module $libexec/mod_proxy_balancer.so
LoadModule slotmem_shm_module $libexec/mod_slotmem_shm.so
LoadModule lbmethod_byrequests_module $libexec/mod_lbmethod_byrequests.so
StartServers 2
<Location /affinity-status>
    SetHandler affinity-status
</Location>
@balancers
EOF
    close $fh;
}

sub balancer {
    my ($name, $extra, @members) = @_;
    return join "\n", "<Proxy \"balancer://$name\">",
        (map { "    BalancerMember \"$_\"" } @members),
        "    ProxySet $extra", '    AffinitySalt rs-salt', '</Proxy>',
        "ProxyPass \"/$name/\" \"balancer://$name/\"", '';
}

sub get { return $ua->get("http://127.0.0.1:$port$_[0]", @_[1 .. $#_]) }

sub doc {
    my $res = get('/affinity-status?format=json');
    return $res->is_success ? $json->decode($res->content) : undef;
}

# "URL status=n ..." over every member of balancer $name, sorted
sub counts {
    my ($name, $d) = @_;
    $d //= doc() or return 'no page';
    my ($bal) = grep { $_->{name} eq "balancer://$name" } @{ $d->{balancers} };
    return 'no balancer' unless $bal;
    my @cells;
    for my $m (@{ $bal->{members} }) {
        for my $s (sort keys %{ $m->{requests} }) {
            push @cells, "$m->{name} $s=$m->{requests}{$s}" if $m->{requests}{$s};
        }
    }
    return join ', ', sort @cells;
}

sub run_httpd {
    my $out = `$httpd -f $dir/httpd.conf @_ 2>&1`;
    diag "httpd @_: $out" if $?;
    return !$?;
}

sub generation { my $d = doc(); return $d ? $d->{server}{generation} : -1 }

# A graceful restart is done when the new generation answers.
sub graceful {
    my $before = generation();
    run_httpd('-k', 'graceful');
    return wait_until(20, sub { generation() > $before });
}

# Stopped when the pid file is gone and nothing answers on the port.
sub stop {
    return unless -f "$dir/httpd.pid";
    run_httpd('-k', 'stop');
    wait_until(20, sub {
        !-f "$dir/httpd.pid"
            && !IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Timeout => 1)
    });
}

sub start {
    for my $try (1 .. 3) {
        return 1 if run_httpd('-k', 'start') && wait_until(20, sub { defined doc() });
        diag `tail -n 5 $dir/error_log`;
        stop();
        sleep 1;
    }
    return 0;
}

# sends $n requests without a cookie; returns "URL new=k ..." as expected
my %expect;
sub new_sessions {
    my ($name, $n) = @_;
    my %by_port = map { (m/:(\d+)$/)[0] => $_ } @b;
    for (1 .. $n) {
        my $res = get("/$name/hello.txt");
        my $backend = $res->header('X-Backend') // 'none';
        my ($k) = $backend =~ /(\d)$/;
        $expect{$name}{ $b[$k - 1] }++ if $k;
    }
    return join ', ', sort map { "$_ new=$expect{$name}{$_}" } keys %{ $expect{$name} };
}

sub counts_are {
    my ($name, $want, $what) = @_;
    my $got;
    wait_until(10, sub { ($got = counts($name)) eq $want });
    is $got, $want, $what;
}

END { stop() }

write_conf(balancer('rs', 'lbmethod=affinity growth=1', @b[0, 1]));
ok start(), 'private httpd started' or diag `tail -5 $dir/error_log`;
my $want = new_sessions('rs', 12);
counts_are('rs', $want, 'counted: 12 new sessions');

ok graceful(), 'graceful restart';
counts_are('rs', $want, 'the counters survive it');
$want = new_sessions('rs', 6);
counts_are('rs', $want, 'and go on counting');

# members reordered and a route given: counters stay with their member
write_conf(balancer('rs', 'lbmethod=affinity growth=1', $b[1], $b[0], $b[2]));
ok graceful(), 'graceful restart with the members reordered and one added';
counts_are('rs', $want, "each member keeps its own counts");
$want = new_sessions('rs', 9);
counts_are('rs', $want, 'the new member is counted too');

# config churn: 15 graceful restarts, each renaming 4 members, reuse the
# records of members two generations gone instead of adding segments
my $churn_ok = 1;
for my $round (1 .. 15) {
    my @renamed = map { "$b[$_ % 3]/c$round-$_/" } 1 .. 4;
    write_conf(balancer('rs', 'lbmethod=affinity growth=1', $b[1], $b[0], $b[2]),
               balancer('churn', 'lbmethod=affinity', @renamed));
    $churn_ok &&= graceful();
    get('/churn/hello.txt');
}
ok $churn_ok, '15 graceful restarts renaming 4 members';
my @segs = `cat $dir/error_log` =~ /AFF0082: .* (\d+) segment\(s\) in all/g;
is((sort { $b <=> $a } @segs)[0], 1, 'the counter records stay in one shared segment');
counts_are('rs', $want, 'the counters of members still configured survive the churn');
my ($churn) = grep { $_->{name} eq 'balancer://churn' } @{ doc()->{balancers} };
my $churn_total = 0;
$churn_total += $_->{requests_total} for @{ $churn->{members} };
is $churn_total, 1, 'renamed members start at zero and are counted';

# a balancer with many members: more records than are free, a new segment
my @many = map { "$b[$_ % 3]/m$_/" } 1 .. 60;
write_conf(balancer('rs', 'lbmethod=affinity growth=1', $b[1], $b[0], $b[2]),
           balancer('big', 'lbmethod=affinity', @many));
ok graceful(), 'graceful restart with a balancer of 60 members';
counts_are('rs', $want, 'the counters survive it');
like `cat $dir/error_log`, qr/AFF0082: .* 2 segment\(s\) in all/, 'in a second shared segment';
my $res = get('/big/hello.txt');
my ($bal) = grep { $_->{name} eq 'balancer://big' } @{ doc()->{balancers} };
my $total = 0;
wait_until(10, sub {
    ($bal) = grep { $_->{name} eq 'balancer://big' } @{ doc()->{balancers} };
    $total = 0;
    $total += $_->{requests_total} for @{ $bal->{members} };
    $total == 1;
});
is $total, 1, 'the new balancer is counted';

# AffinityStore changed at a graceful restart: kept until a full restart
# (one store in the parent, AFF0089 says so)
sub learn_conf {
    my ($spec) = @_;
    return join "\n", "LoadModule socache_shmcb_module $libexec/mod_socache_shmcb.so",
        "AffinityStore \"$spec\"", '<Proxy "balancer://lrs">',
        "    BalancerMember \"$b[0]\"", '    ProxySet lbmethod=affinity',
        '    AffinityMode learn SID', '</Proxy>', 'ProxyPass "/lrs/" "balancer://lrs/"', '';
}
write_conf(balancer('rs', 'lbmethod=affinity growth=1', $b[1], $b[0], $b[2]),
           learn_conf("shmcb:$dir/store-a(65536)"));
ok graceful(), 'graceful restart with a learn-mode balancer';
write_conf(balancer('rs', 'lbmethod=affinity growth=1', $b[1], $b[0], $b[2]),
           learn_conf("shmcb:$dir/store-b(65536)"));
ok graceful(), 'graceful restart with AffinityStore changed';
like `cat $dir/error_log`, qr/AFF0089: AffinityStore shmcb:\S+store-b\(65536\): not used until a full restart.*store-a/,
     'the changed store waits for a full restart, and the log says so';

# a full stop and start: zero
stop();
ok start(), 'started again';
is counts('rs'), '', 'after a full stop and start the counters are zero';
isnt doc()->{server}{counting_since}, undef, 'counting_since is given';

# no balancer using affinity
stop();
write_conf(join "\n", '<Proxy "balancer://plain">', "    BalancerMember \"$b[0]\"",
           '    ProxySet lbmethod=byrequests', '</Proxy>', 'ProxyPass "/plain/" "balancer://plain/"');
ok start(), 'started with no affinity balancer';
$res = get('/affinity-status');
like $res->content, qr/No balancer of this server uses <code>lbmethod=affinity/,
     'no affinity balancer: the page says so';
is_deeply doc()->{balancers}, [], 'and the JSON lists none';
