# Domain mode (AffinityMode domain): weighted rendezvous hashing of the Host.
#   pinned, pinsalt  backend1..5 with the identities and weights of
#                    t/unit/test_route.c's pinned vectors (member i = backend i+1);
#                    pinsalt adds AffinitySalt s3cret
#   sites            backend1..3, growth=2: live movement through balancer-manager
# The main test server answers any Host.  Every block restores what it changed.
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use Apache::TestRequest;
use IO::Socket::INET ();
use LWP::UserAgent ();
use lib 't/lib';
use AffinityTest;

plan tests => 37;

# test_domain_vectors: host => [member unsalted, member salted]
my @vectors = (
    ['example.com', 1, 3], ['www.example.org', 1, 3], ['shop.example.net', 1, 1],
    ['a.b.c.d', 3, 2], ['plone.org', 3, 4], ['xn--bcher-kva.example', 2, 0],
    ['localhost', 1, 2], ['Example.COM.', 1, 3],
);
my @identity = ('10.0.0.21:8080', '10.0.0.22:8080', '10.0.0.23:8080', 'blue',
                '10.0.0.25:8080');
sub member { 'backend' . ($_[0] + 1) }

# ---- pinned vectors, live ------------------------------------------------------
for my $v (@vectors) {
    my ($host, $u, $s) = @$v;
    my $ru = fetch('/pinned/hello.txt', Host => $host);
    my $rs = fetch('/pinsalt/hello.txt', Host => $host);
    is join(' ', backend($ru), backend($rs)), join(' ', member($u), member($s)),
       "$host -> member $u unsalted, member $s salted";
}

# Host variants: case, trailing dot, port.
{
    my @variants = ('EXAMPLE.COM', 'example.com.', 'Example.Com:8080',
                    'example.com:80', 'eXample.com.:443');
    my @got = map { backend(fetch('/pinned/hello.txt', Host => $_)) } @variants;
    is_deeply \@got, [('backend2') x @variants],
        'case, trailing dot and port do not change the member (unsalted)';
    @got = map { backend(fetch('/pinsalt/hello.txt', Host => $_)) } @variants;
    is_deeply \@got, [('backend4') x @variants], 'nor salted';
}

# No Host (HTTP/1.0): the server name is the key.
{
    my $servername = Apache::Test::vars('servername');
    my ($expect) = map { member($_->[1]) } grep { $_->[0] eq $servername } @vectors;
    $expect //= backend(fetch('/pinned/hello.txt', Host => $servername));
    my $sock = IO::Socket::INET->new(PeerAddr => Apache::TestRequest::hostport(),
                                     Timeout => 10)
        or die "connect: $!\n";
    print $sock "GET /pinned/hello.txt HTTP/1.0\r\n\r\n";
    my $raw = do { local $/; <$sock> } // '';
    my ($got) = $raw =~ /^X-Backend: (\S+)/mi;
    is $got // '(none)', $expect, "no Host header: keyed on the server name ($servername)";
}

# No affinity cookie is read or set.
{
    my $backend1_id = route_id('', $identity[0]);
    my @r = map { fetch('/pinned/hello.txt?domain-cookie', Host => 'example.com',
                        Cookie => "ROUTEID=$backend1_id") } 1 .. 10;
    is_deeply [map { backend($_) } @r], [('backend2') x 10],
        "a ROUTEID cookie naming backend1 is ignored";
    is scalar(grep { defined $_->header('Set-Cookie') } @r), 0, 'no Set-Cookie, with or without cookie';
    @r = map { fetch('/pinned/hello.txt', Host => 'plone.org') } 1 .. 10;
    is scalar(grep { defined $_->header('Set-Cookie') } @r), 0, 'nor for a first visit';

    my @lines;
    wait_until(5, sub {
        @lines = grep { m{^/pinned/hello\.txt\?domain-cookie } } log_lines('affinity_log');
        @lines >= 10;
    });
    my $route = route_id('', $identity[1]);
    my $re = qr{ 200 status=domain route=$route changed=- session=- worker=\Q${\ member_url('backend2')}\E};
    my @bad = grep { !/$re/ } @lines;
    ok @lines == 10 && !@bad,
       'logged: AFFINITY_STATUS=domain, AFFINITY_ROUTE = ID of backend2, no route change, no session'
        or diag scalar(@lines) . ' lines, e.g. ' . ($bad[0] // $lines[0] // '(none)');

    fetch('/pinsalt/hello.txt?domain-salted', Host => 'example.com');
    my $salted = route_id('s3cret', 'blue');
    ok wait_until(5, sub { grep { m{^/pinsalt/hello\.txt\?domain-salted 200 status=domain route=$salted } }
                                log_lines('affinity_log') }),
       'salted: AFFINITY_ROUTE is the salted ID of backend4 (route blue)';
}

# The same host, many requests, every child: one member.
{
    my (%seen, $requests);
    for my $v (@vectors) {
        for (1 .. 20) {
            $seen{ $v->[0] }{ backend(fetch('/pinned/hello.txt', Host => $v->[0])) }++;
            $requests++;
        }
    }
    my @split = grep { keys %{ $seen{$_} } != 1 } sort keys %seen;
    ok !@split, "$requests requests: each host always on one member"
        or diag join '; ', map { my $h = $_; "$h: " . join(',', sort keys %{ $seen{$h} }) } @split;
}

# ---- balancer://sites: movement through balancer-manager ------------------------
my @hosts = map { "site$_.example.com" } 1 .. 200;

# Two kept-alive client connections, used in turn: under prefork each is
# held by one child, which never served a balancer-manager POST (those
# arrive on fresh connections), and few children proxying means few idle
# member connections held open (a fresh connection per request makes every
# child hold one to each member, and the server runs out of children).
my @ua = map { LWP::UserAgent->new(keep_alive => 1, timeout => 30) } 1 .. 2;
my $turn = 0;
my $sites_url = Apache::TestRequest::resolve_url('/sites/hello.txt');
sub fetch_kept {
    my (%headers) = @_;
    return $ua[$turn++ % @ua]->get($sites_url, %headers);
}

# host => backend for every host, one request each; dies on anything odd.
sub map_hosts {
    my ($fresh) = @_;
    my %m;
    for my $h (@hosts) {
        my $r = $fresh ? fetch('/sites/hello.txt', Host => $h) : fetch_kept(Host => $h);
        die "$h: " . $r->status_line . "\n" unless $r->code == 200;
        die "$h: Set-Cookie in domain mode\n" if defined $r->header('Set-Cookie');
        $m{$h} = backend($r);
    }
    return \%m;
}

sub counts {
    my ($m) = @_;
    my %n;
    $n{$_}++ for values %$m;
    return join ', ', map { "$_=$n{$_}" } sort keys %n;
}

# Hosts whose member differs between two maps: "host a->b".
sub moves {
    my ($from, $to) = @_;
    return map { "$_ $from->{$_}->$to->{$_}" } grep { $from->{$_} ne $to->{$_} } @hosts;
}

sub same_map {
    my ($base, $now, $name) = @_;
    my @m = moves($base, $now);
    ok !@m, $name or diag scalar(@m) . ' hosts differ: ' . join(', ', @m[0 .. ($#m < 5 ? $#m : 5)]);
}

sub edit {
    my ($member, %params) = @_;
    bm_post('sites', w => member_url($member), %params);
}

my $base = map_hosts();
{
    my %n;
    $n{$_}++ for values %$base;
    ok +(grep { ($n{"backend$_"} // 0) >= 40 } 1 .. 3) == 3,
       'equal weights: each of 3 members has about a third of 200 hosts (' . counts($base) . ')';
    same_map($base, map_hosts(1), 'mapped again on fresh connections (many children): every host on the same member');
}

# Disabled, drained or stopped: only that member's hosts move; back: all return.
for my $case (['D', 'backend2', 'disabled'], ['N', 'backend3', 'drained'],
              ['S', 'backend1', 'stopped']) {
    my ($flag, $b, $what) = @$case;
    edit($b, "w_status_$flag" => 1);
    my $now = map_hosts();
    my @wrong = grep { !/ \Q$b\E->/ } moves($base, $now);
    my %to;
    $to{ $now->{$_} }++ for grep { $base->{$_} eq $b } @hosts;
    ok !(grep { $_ eq $b } values %$now) && keys(%to) == 2,
       "$b $what: it has no hosts, its hosts spread over both others (" . counts($now) . ')';
    ok !@wrong, "$what: no other host moved" or diag join ', ', @wrong[0 .. ($#wrong < 5 ? $#wrong : 5)];
    edit($b, "w_status_$flag" => 0);
    same_map($base, map_hosts(), "$b back: every host exactly where it was");
}

# Raising one member's lbfactor moves hosts only to it.
{
    edit('backend1', w_lf => 2);
    my $now = map_hosts();
    my @m = moves($base, $now);
    my @wrong = grep { !/->backend1$/ } @m;
    ok !@wrong, 'backend1 lbfactor 1 -> 2: hosts move only to backend1'
        or diag join ', ', @wrong[0 .. ($#wrong < 5 ? $#wrong : 5)];
    # ideal: its share goes from 1/3 to 1/2, i.e. 1/6 of all hosts move
    ok @m >= 10 && @m <= 60, scalar(@m) . ' of 200 hosts moved (ideal about 33)';
    edit('backend1', w_lf => 1);
    same_map($base, map_hosts(), 'lbfactor back to 1: every host back');
}

# A member added live (growth): disabled at first, then it takes about
# 1/(N+1) of the hosts, all of them from the others, none between them.
{
    my $url = member_url('backend4');
    bm_post('sites', b_wyes => 1, b_nwrkr => $url)
        unless grep { $_->{name} eq $url } @{ bm_members('sites') };
    like member_status('sites', $url) // '', qr/\bDis\b/, 'backend4 added, disabled';
    same_map($base, map_hosts(), 'added but disabled: no host moves');

    edit('backend4', w_status_D => 0);
    my $now = map_hosts();
    my @m = moves($base, $now);
    my @wrong = grep { !/->backend4$/ } @m;
    ok !@wrong, 'backend4 enabled: every host that moved went to backend4'
        or diag join ', ', @wrong[0 .. ($#wrong < 5 ? $#wrong : 5)];
    ok @m >= 20 && @m <= 80, scalar(@m) . ' of 200 hosts moved to it (ideal 50, 1/(N+1))';

    my ($h) = grep { $now->{$_} eq 'backend4' } @hosts;
    fetch("/sites/hello.txt?domain-grown", Host => $h // 'none');
    my $id4 = route_id('', '127.0.0.1:' . backend_port('backend4'));
    ok wait_until(5, sub { grep { m{^/sites/hello\.txt\?domain-grown 200 status=domain route=$id4 } }
                                log_lines('affinity_log') }),
       'AFFINITY_ROUTE of the new member is sha1_hex("127.0.0.1:PORT")';

    edit('backend4', w_status_D => 1);
    same_map($base, map_hosts(), 'backend4 disabled again: every host back');
}
