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
use PrivateHttpd;

plan tests => 25;

my $srv = PrivateHttpd->new('status-restart', fresh => 1);
my ($dir, $port) = ($srv->dir, $srv->port);
my ($mpm, $libexec) = ($srv->mpm, $srv->libexec);
my (@b);
for my $n (1 .. 3) {
    push @b, 'http://127.0.0.1:' . backend_port("backend$n");
}
my $ua = LWP::UserAgent->new(keep_alive => 0, timeout => 10);

sub write_conf {
    my (@balancers) = @_;
    open my $fh, '>', "$dir/httpd.conf" or die "$dir/httpd.conf: $!";
    print $fh $srv->head, <<"EOF";
LogLevel warn affinity:debug
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

# "URL status=n ..." over every member of balancer $name, sorted
sub counts {
    my ($name, $d) = @_;
    $d //= $srv->doc() or return 'no page';
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

# sends $n requests without a cookie; returns "URL new=k ..." as expected
my %expect;
sub new_sessions {
    my ($name, $n) = @_;
    my %by_port = map { (m/:(\d+)$/)[0] => $_ } @b;
    for (1 .. $n) {
        my $res = $srv->get("/$name/hello.txt");
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

write_conf(balancer('rs', 'lbmethod=affinity growth=1', @b[0, 1]));
ok $srv->start(), 'private httpd started' or diag `tail -5 $dir/error_log`;
my $want = new_sessions('rs', 12);
counts_are('rs', $want, 'counted: 12 new sessions');

ok $srv->graceful(), 'graceful restart';
counts_are('rs', $want, 'the counters survive it');
$want = new_sessions('rs', 6);
counts_are('rs', $want, 'and go on counting');

# members reordered and a route given: counters stay with their member
write_conf(balancer('rs', 'lbmethod=affinity growth=1', $b[1], $b[0], $b[2]));
ok $srv->graceful(), 'graceful restart with the members reordered and one added';
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
    $churn_ok &&= $srv->graceful();
    $srv->get('/churn/hello.txt');
}
ok $churn_ok, '15 graceful restarts renaming 4 members';
my @segs = `cat $dir/error_log` =~ /AFF0082: .* (\d+) segment\(s\) in all/g;
is((sort { $b <=> $a } @segs)[0], 1, 'the counter records stay in one shared segment');
counts_are('rs', $want, 'the counters of members still configured survive the churn');
my ($churn) = grep { $_->{name} eq 'balancer://churn' } @{ $srv->doc()->{balancers} };
my $churn_total = 0;
$churn_total += $_->{requests_total} for @{ $churn->{members} };
is $churn_total, 1, 'renamed members start at zero and are counted';

# a balancer with many members: more records than are free, a new segment
my @many = map { "$b[$_ % 3]/m$_/" } 1 .. 60;
write_conf(balancer('rs', 'lbmethod=affinity growth=1', $b[1], $b[0], $b[2]),
           balancer('big', 'lbmethod=affinity', @many));
ok $srv->graceful(), 'graceful restart with a balancer of 60 members';
counts_are('rs', $want, 'the counters survive it');
like `cat $dir/error_log`, qr/AFF0082: .* 2 segment\(s\) in all/, 'in a second shared segment';
my $res = $srv->get('/big/hello.txt');
my ($bal) = grep { $_->{name} eq 'balancer://big' } @{ $srv->doc()->{balancers} };
my $total = 0;
wait_until(10, sub {
    ($bal) = grep { $_->{name} eq 'balancer://big' } @{ $srv->doc()->{balancers} };
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
ok $srv->graceful(), 'graceful restart with a learn-mode balancer';
write_conf(balancer('rs', 'lbmethod=affinity growth=1', $b[1], $b[0], $b[2]),
           learn_conf("shmcb:$dir/store-b(65536)"));
ok $srv->graceful(), 'graceful restart with AffinityStore changed';
like `cat $dir/error_log`, qr/AFF0089: AffinityStore shmcb:\S+store-b\(65536\): not used until a full restart.*store-a/,
     'the changed store waits for a full restart, and the log says so';

# a full stop and start: zero
$srv->stop();
ok $srv->start(), 'started again';
is counts('rs'), '', 'after a full stop and start the counters are zero';
isnt $srv->doc()->{server}{counting_since}, undef, 'counting_since is given';

# no balancer using affinity
$srv->stop();
write_conf(join "\n", '<Proxy "balancer://plain">', "    BalancerMember \"$b[0]\"",
           '    ProxySet lbmethod=byrequests', '</Proxy>', 'ProxyPass "/plain/" "balancer://plain/"');
ok $srv->start(), 'started with no affinity balancer';
$res = $srv->get('/affinity-status');
like $res->content, qr/No balancer of this server uses <code>lbmethod=affinity/,
     'no affinity balancer: the page says so';
is_deeply $srv->doc()->{balancers}, [], 'and the JSON lists none';
