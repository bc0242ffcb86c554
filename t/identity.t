# Member identities beyond host:port (t/conf/identity.conf.in): a
# unix-socket member's identity is its socket path, an IPv6 member's is
# [addr]:port; AFF0003 names the socket two members share.  The members are
# t/lib/affinity_backend.py processes started here and stopped at the end.
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use Apache::TestRequest;
use IO::Socket::IP;
use IO::Socket::UNIX;
use POSIX ();
use lib 't/lib';
use AffinityTest;

plan tests => 8;

my $port = Apache::Test::vars('port');
my %sock = map { $_ => "/tmp/mod_affinity-$port-$_.sock" } qw(app1 app2);
my $helper = Apache::Test::vars('t_dir') . '/lib/affinity_backend.py';
my ($python) = grep { -x } map { "$_/python3" } split /:/, $ENV{PATH} // '';
my @pids;

END {
    local $?;       # keep the test's exit status
    for my $pid (@pids) {
        kill 'TERM', $pid;
        waitpid $pid, 0;
    }
    unlink values %sock;
}

sub start_backend {
    my @args = @_;
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if (!$pid) {
        exec($python, $helper, @args, '--lifetime', '120') or POSIX::_exit(127);
    }
    push @pids, $pid;
}

sub reachable {
    my ($connect) = @_;
    return wait_until(10, sub { my $s = $connect->(); close $s if $s; $s });
}

# ---- unix-socket members ------------------------------------------------------
SKIP: {
    skip 'python3 is needed for the unix-socket members', 4 unless $python;
    start_backend($_, '--unix', $sock{$_}) for sort keys %sock;
    for my $name (sort keys %sock) {
        reachable(sub { IO::Socket::UNIX->new(Peer => $sock{$name}) })
            or die("backend $name did not listen on $sock{$name}");
    }
    my %want = map { $_ => route_id('idsalt', $sock{$_}) } keys %sock;
    my %got;
    for (1 .. 6) {
        my $r = fetch('/uds/hello.txt');
        $got{ backend($r) } = cookie_value($r) if $r->code == 200;
    }
    is_deeply \%got, \%want,
        'unix-socket members: ID is sha1(salt . socket path), one per socket';
    isnt $want{app1}, route_id('idsalt', 'localhost:80'), 'not the shared localhost:80 of old';
    is backend(fetch('/uds/hello.txt', Cookie => "ROUTEID=$want{app2}")), 'app2',
        'a unix-socket member\'s ID sticks';
    unlike error_log_text(), qr{AFF0003: balancer://uds:},
        'members on distinct sockets do not share an identity';
}

my $errors = error_log_text();
like $errors, qr{AFF0003: balancer://warntwins-uds: members unix:/tmp/mod_affinity-$port-twin\.sock\|http://localhost/one/ and unix:/tmp/mod_affinity-$port-twin\.sock\|http://localhost/two/ share the identity "/tmp/mod_affinity-$port-twin\.sock"},
    'AFF0003 names the socket two members share';

# ---- an IPv6 member ---------------------------------------------------------------
SKIP: {
    my $probe = IO::Socket::IP->new(LocalHost => '::1', LocalPort => 0, Listen => 1);
    skip "no IPv6 loopback on this machine (cannot listen on [::1]: $@)", 3
        unless $probe;
    close $probe;
    skip 'python3 is needed for the IPv6 member', 3 unless $python;
    my ($member) = map { $_->{name} } @{ bm_members('v6') };
    my ($v6port) = ($member // '') =~ m{^http://\[::1\]:(\d+)};
    ok $v6port, "the IPv6 member is listed as http://[::1]:PORT" or diag $member;
    start_backend('v6', '--ipv6', $v6port);
    reachable(sub { IO::Socket::IP->new(PeerHost => '::1', PeerPort => $v6port) })
        or die("IPv6 backend did not listen on [::1]:$v6port");
    my $r = fetch('/v6/hello.txt');
    is backend($r), 'v6', 'the IPv6 member answers';
    is cookie_value($r), route_id('idsalt', "[::1]:$v6port"),
        'IPv6 member: ID is sha1(salt . "[addr]:port")';
}
