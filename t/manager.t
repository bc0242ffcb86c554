# balancer-manager edits take effect live, on the next request, in every
# child (each edit is followed by 20-40 requests on fresh connections, so
# several children serve them).  Balancers (t/conf/extra.conf.in):
#   managed     backend1..3, growth=2
#   redirecting backend1 route=r1 redirect=r2, backend2 route=r2, backend3 route=r3
#   nofailover  backend1, backend2, nofailover=On
#   tiers       backend1 lbset 0, backend2 lbset 1, backend3 lbset 0 hot standby
# Every block restores what it changed.
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use Apache::TestRequest;
use lib 't/lib';
use AffinityTest;

plan tests => 75;

# (loop variables, not $_: Apache::Test's config parser clobbers $_)
my %id;
for my $b (qw(backend1 backend2 backend3 backend4 backend5)) {
    $id{$b} = route_id('', '127.0.0.1:' . backend_port($b));
}
# Readable names for the IDs a response may set.
my %label = map { $id{$_} => "id($_)" } keys %id;
for my $route (qw(r1 r2 r3 newroute n2)) {
    $label{ route_id('', $route) } = "id($route)";
}

# The member a served response's cookie should name: the member's ID
# under its current route (blocks that edit routes say so here).
my %current = map { $_ => "id($_)" } keys %id;

# "CODE BACKEND COOKIE" for one response; COOKIE is nocookie, served (one
# affinity Set-Cookie naming the member that served, as %current says),
# id(...) for one naming something else, or N-cookies.
sub outcome {
    my ($r) = @_;
    my $b = backend($r) || '-';
    my @c = affinity_cookies($r);
    my $c;
    if (!@c) {
        $c = 'nocookie';
    }
    elsif (@c > 1) {
        $c = scalar(@c) . '-cookies';
    }
    else {
        my $v = cookie_value($r) // '';
        my $l = $label{$v} // "cookie=$v";
        $c = ($current{$b} // '') eq $l ? 'served' : $l;
    }
    return join ' ', $r->code, $b, $c;
}

sub tally {
    my %n;
    $n{ outcome($_) }++ for @_;
    return join ', ', map { "$_ x$n{$_}" } sort keys %n;
}

sub run_n {
    my ($n, $path, @headers) = @_;
    my @r;
    push @r, fetch($path, @headers) for 1 .. $n;
    return @r;
}

sub with_cookie {
    my ($n, $path, $member_id) = @_;
    return run_n($n, $path, Cookie => "ROUTEID=$member_id");
}

# Every response's outcome matches $re (anchored).
sub every_is {
    my ($re, $name, @r) = @_;
    my @bad = grep { outcome($_) !~ /^(?:$re)$/ } @r;
    ok(@r && !@bad, $name) or diag 'outcomes: ' . tally(@r);
}

sub count_on {
    my ($backend, @r) = @_;
    return scalar grep { backend($_) eq $backend } @r;
}

sub spread { my %n; $n{ backend($_) }++ for @_; join ', ', map { "$_=$n{$_}" } sort keys %n }

sub edit {
    my ($balancer, $member, %params) = @_;
    bm_post($balancer, w => member_url($member), %params);
}

sub member_info {
    my ($balancer, $member) = @_;
    my $url = member_url($member);
    my ($m) = grep { $_->{name} eq $url } @{ bm_members($balancer) };
    return $m // {};
}

sub status_of { member_status($_[0], member_url($_[1])) // '(no such member)' }

# The access-log lines of the $n requests to $uri (the tag in its query
# string keeps them apart); the backends' own lines have other paths.
sub log_lines_for {
    my ($uri, $n) = @_;
    my @lines;
    wait_until(5, sub {
        @lines = grep { m{^\Q$uri\E } } log_lines('affinity_log');
        @lines >= $n;
    });
    return @lines;
}

sub logged_as {
    my ($uri, $n, $re, $name) = @_;
    my @lines = log_lines_for($uri, $n);
    my @bad = grep { !/$re/ } @lines;
    ok(@lines == $n && !@bad, $name)
        or diag scalar(@lines) . " lines, e.g.: " . ($bad[0] // $lines[0] // '(none)');
}

my $M = '/managed/hello.txt';

# ---- baseline --------------------------------------------------------------
{
    my @r = run_n(20, "$M?new");
    every_is('200 backend[123] served', 'new sessions: one cookie naming the member that served', @r);
    my $b = backend($r[0]);
    every_is("200 $b nocookie", "a session on $b sticks, no Set-Cookie",
             with_cookie(20, $M, $id{$b}));
}

# ---- drain (N) -----------------------------------------------------------------
{
    edit('managed', 'backend2', w_status_N => 1);
    like status_of('managed', 'backend2'), qr/\bDrn\b/, 'backend2 draining (balancer-manager shows Drn)';
    every_is('200 backend2 nocookie', 'draining: its session stays, no Set-Cookie',
             with_cookie(20, "$M?drained", $id{backend2}));
    logged_as("$M?drained", 20, qr/ 200 status=valid route=$id{backend2} changed=- /,
              'logged as valid');
    my @new = run_n(30, $M);
    every_is('200 backend[13] served', 'draining: 30 new sessions never land on it', @new);

    edit('managed', 'backend2', w_status_N => 0);
    unlike status_of('managed', 'backend2'), qr/\bDrn\b/, 'drain cleared';
    @new = run_n(30, $M);
    ok count_on('backend2', @new) > 0, 'undrained: it gets new sessions again'
        or diag spread(@new);
}

# ---- disabled (D) and stopped (S) ----------------------------------------------
for my $case (['D', 'Dis', 'backend3', 'disabled'], ['S', 'Stop', 'backend1', 'stopped']) {
    my ($flag, $shown, $b, $what) = @$case;
    my $others = join '', grep { "backend$_" ne $b } 1 .. 3;
    edit('managed', $b, "w_status_$flag" => 1);
    like status_of('managed', $b), qr/\b$shown\b/, "$b $what (balancer-manager shows $shown)";
    every_is("200 backend[$others] served",
             "$what: its session moves, with exactly one Set-Cookie naming the new member",
             with_cookie(20, "$M?$what", $id{$b}));
    logged_as("$M?$what", 20, qr/ 200 status=down route=[0-9a-f]{40} changed=1 session=$id{$b} /,
              'logged as down');
    is count_on($b, run_n(30, $M)), 0, "$what: no new session lands on it";

    edit('managed', $b, "w_status_$flag" => 0);
    every_is("200 $b nocookie", "back in service: a session on $b sticks again",
             with_cookie(20, $M, $id{$b}));
}

# ---- hot standby (H) -------------------------------------------------------------
{
    edit('managed', 'backend1', w_status_H => 1);
    like status_of('managed', 'backend1'), qr/\bStby\b/, 'backend1 hot standby';
    every_is('200 backend1 nocookie', 'hot standby: its existing session stays',
             with_cookie(20, $M, $id{backend1}));
    my @new = run_n(30, $M);
    every_is('200 backend[23] served', 'hot standby: no new sessions while others are usable', @new);

    for my $b (qw(backend2 backend3)) { edit('managed', $b, w_status_D => 1) }
    every_is('200 backend1 served', 'hot standby takes new sessions when nothing else is usable',
             run_n(20, $M));
    for my $b (qw(backend2 backend3)) { edit('managed', $b, w_status_D => 0) }

    edit('managed', 'backend1', w_status_H => 0);
    unlike status_of('managed', 'backend1'), qr/\bStby\b/, 'hot standby cleared';
    @new = run_n(30, $M);
    ok count_on('backend1', @new) > 0, 'then it gets new sessions again' or diag spread(@new);
}

# ---- lbfactor ------------------------------------------------------------------
{
    my @new = run_n(30, $M);
    my $before = count_on('backend1', @new);
    ok $before >= 5 && $before <= 15, "equal lbfactors: backend1 gets about a third ($before of 30)"
        or diag spread(@new);

    edit('managed', 'backend1', w_lf => 100);
    is member_info('managed', 'backend1')->{loadfactor}, '100.00', 'backend1 lbfactor 100';
    @new = run_n(30, $M);
    my $after = count_on('backend1', @new);
    ok $after >= 27, "lbfactor 100 against 1: nearly all new sessions go there ($after of 30)"
        or diag spread(@new);
    every_is('200 backend2 nocookie', 'lbfactor does not move an existing session',
             with_cookie(20, $M, $id{backend2}));

    edit('managed', 'backend1', w_lf => 1);
    @new = run_n(30, $M);
    $after = count_on('backend1', @new);
    ok $after >= 5 && $after <= 15, "lbfactor back to 1: about a third again ($after of 30)"
        or diag spread(@new);
}

# ---- lbset and hot standby on balancer://tiers -----------------------------------
{
    my $T = '/tiers/hello.txt';
    every_is('200 backend1 served', 'tiers: new sessions go to lbset 0, not its standby',
             run_n(20, $T));
    every_is('200 backend2 nocookie', 'a session on lbset 1 stays (lbset does not matter for it)',
             with_cookie(20, $T, $id{backend2}));
    every_is('200 backend3 nocookie', 'a session on the hot standby stays',
             with_cookie(20, $T, $id{backend3}));

    edit('tiers', 'backend2', w_ls => 0);
    is member_info('tiers', 'backend2')->{lbset}, '0', 'backend2 moved to lbset 0';
    my @new = run_n(30, $T);
    ok count_on('backend1', @new) >= 10 && count_on('backend2', @new) >= 10
       && count_on('backend3', @new) == 0,
       'lbset edit: new sessions shared by backend1 and backend2, not the standby'
        or diag spread(@new);

    edit('tiers', 'backend2', w_ls => 1);
    every_is('200 backend1 served', 'lbset restored: new sessions on backend1 only',
             run_n(30, $T));

    edit('tiers', 'backend1', w_status_D => 1);
    every_is('200 backend3 served',
             'lbset 0 without a usable member: its hot standby takes new sessions before lbset 1',
             run_n(20, $T));
    edit('tiers', 'backend3', w_status_D => 1);
    every_is('200 backend2 served', 'lbset 0 all down: lbset 1 takes them', run_n(20, $T));
    for my $b (qw(backend1 backend3)) { edit('tiers', $b, w_status_D => 0) }
    every_is('200 backend1 served', 'restored: backend1 again', run_n(20, $T));
}

# ---- route edit (w_wr) -------------------------------------------------------------
{
    edit('managed', 'backend1', w_wr => 'newroute');
    is member_info('managed', 'backend1')->{route}, 'newroute', 'backend1 route set to newroute';
    local $current{backend1} = 'id(newroute)';

    my @r = with_cookie(20, "$M?oldroute", $id{backend1});
    every_is('200 backend[123] served',
             'the old ID is unknown now: a new session, one cookie naming the served member (backend1 as sha1_hex("newroute"))',
             @r);
    logged_as("$M?oldroute", 20, qr/ 200 status=invalid route=[0-9a-f]{40} changed=1 session=$id{backend1} /,
              'logged as invalid');
    every_is('200 backend1 nocookie', 'a cookie with sha1_hex("newroute") sticks to backend1',
             with_cookie(20, $M, route_id('', 'newroute')));
    my @new = run_n(30, $M);
    ok count_on('backend1', @new) > 0, 'new sessions still reach backend1' or diag spread(@new);
    every_is('200 backend[123] served', 'and its new sessions get sha1_hex("newroute")', @new);

    edit('managed', 'backend1', w_wr => '');
    local $current{backend1} = 'id(backend1)';
    every_is('200 backend1 nocookie', 'route cleared: the host:port ID sticks again',
             with_cookie(20, $M, $id{backend1}));
    every_is('200 backend[123] served', 'and sha1_hex("newroute") is unknown again',
             with_cookie(20, $M, route_id('', 'newroute')));
}

# ---- redirect ------------------------------------------------------------------------
{
    my $R = '/redirecting/hello.txt';
    my %rid = map { $_ => route_id('', $_) } qw(r1 r2 r3);
    local @current{qw(backend1 backend2 backend3)} = ('id(r1)', 'id(r2)', 'id(r3)');

    every_is('200 backend1 nocookie', 'redirecting: a session on r1 sticks',
             with_cookie(20, $R, $rid{r1}));
    edit('redirecting', 'backend1', w_status_D => 1);
    every_is('200 backend2 served', 'r1 disabled: its session follows redirect=r2, cookie sha1_hex("r2")',
             with_cookie(20, "$R?redirected", $rid{r1}));
    logged_as("$R?redirected", 20, qr/ 200 status=down route=$rid{r2} changed=1 session=$rid{r1} /,
              'logged as down, with the ID of r2 as AFFINITY_ROUTE');

    edit('redirecting', 'backend1', w_rr => 'r3');
    every_is('200 backend3 served', 'Route Redirect edited to r3: sessions of r1 go to r3',
             with_cookie(20, $R, $rid{r1}));
    edit('redirecting', 'backend1', w_rr => 'r2');

    # A redirect to a route just given in balancer-manager: every child
    # has served this balancer before, with backend3's old route.
    edit('redirecting', 'backend3', w_wr => 'newroute');
    edit('redirecting', 'backend1', w_rr => 'newroute');
    {
        local $current{backend3} = 'id(newroute)';
        every_is('200 backend3 served',
                 'Route Redirect to a route edited live: sessions of r1 go there, cookie sha1_hex("newroute")',
                 with_cookie(20, $R, $rid{r1}));
    }
    edit('redirecting', 'backend1', w_rr => 'r2');
    edit('redirecting', 'backend3', w_wr => 'r3');

    edit('redirecting', 'backend2', w_status_D => 1);
    every_is('200 backend3 served', 'redirect target also disabled: a new member (the only usable one)',
             with_cookie(20, $R, $rid{r1}));
    edit('redirecting', 'backend2', w_status_D => 0);

    edit('redirecting', 'backend1', w_status_D => 0);
    every_is('200 backend1 nocookie', 'r1 back: its session sticks again',
             with_cookie(20, $R, $rid{r1}));
}

# ---- nofailover ----------------------------------------------------------------------
{
    my $F = '/nofailover/hello.txt';
    edit('nofailover', 'backend1', w_status_D => 1);
    my @r = with_cookie(20, "$F?nofo", $id{backend1});
    every_is('503 - nocookie', 'nofailover: a session whose member is disabled gets 503 and no cookie', @r);
    ok !grep({ defined $_->header('Set-Cookie') } @r), 'no Set-Cookie at all on those 503s';
    logged_as("$F?nofo", 20, qr/ 503 status=down route=- changed=- session=$id{backend1} /,
              'logged as down, no AFFINITY_ROUTE');
    every_is('200 backend2 nocookie', 'sessions of the other member still work',
             with_cookie(20, $F, $id{backend2}));
    every_is('200 backend2 served', 'new sessions go to the other member', run_n(20, $F));

    bm_post('nofailover', b_sforce => 0);
    every_is('200 backend2 served', 'nofailover switched Off live: the session moves instead',
             with_cookie(20, $F, $id{backend1}));
    bm_post('nofailover', b_sforce => 1);
    every_is('503 - nocookie', 'and On again: 503', with_cookie(20, $F, $id{backend1}));

    # A Route Redirect is followed even with nofailover=On (as httpd does).
    edit('nofailover', 'backend2', w_wr => 'n2');
    edit('nofailover', 'backend1', w_rr => 'n2');
    local $current{backend2} = 'id(n2)';
    every_is('200 backend2 served', 'nofailover with a Route Redirect: the redirect is followed',
             with_cookie(20, $F, $id{backend1}));
    edit('nofailover', 'backend1', w_rr => '');
    edit('nofailover', 'backend2', w_wr => '');

    edit('nofailover', 'backend1', w_status_D => 0);
    every_is('200 backend1 nocookie', 'member back: its session is served again',
             with_cookie(20, $F, $id{backend1}));
}

# ---- member added live (growth) --------------------------------------------------------
{
    my $url = member_url('backend4');
    bm_post('managed', b_wyes => 1, b_nwrkr => $url)
        unless %{ member_info('managed', 'backend4') };
    my @members = @{ bm_members('managed') };
    is scalar(@members), 4, 'backend4 added to balancer://managed';
    like status_of('managed', 'backend4'), qr/\bDis\b/, 'it starts disabled';
    is count_on('backend4', run_n(30, $M)), 0, 'disabled: no new session goes there';
    every_is('200 backend[123] served', 'a cookie naming it moves to another member',
             with_cookie(20, $M, $id{backend4}));

    edit('managed', 'backend4', w_status_D => 0);
    my @new = run_n(40, $M);
    ok count_on('backend4', @new) >= 4, 'enabled: it gets new sessions' or diag spread(@new);
    every_is('200 backend[1234] served',
             'each names the member that served; backend4\'s is sha1_hex("127.0.0.1:PORT")', @new);
    every_is('200 backend4 nocookie', "backend4's cookie sticks",
             with_cookie(20, $M, $id{backend4}));

    edit('managed', 'backend4', w_status_D => 1);
    every_is('200 backend[123] served', 'disabled again: its sessions move',
             with_cookie(20, $M, $id{backend4}));
}

# ---- lbmethod switched away and back ---------------------------------------------------
{
    bm_post('managed', b_lbm => 'byrequests');
    my @r = run_n(20, $M);
    every_is('200 backend[123] nocookie', 'lbmethod byrequests: new visitors get no affinity cookie', @r);
    @r = with_cookie(20, $M, $id{backend1});
    every_is('200 backend[123] nocookie', 'and a cookie sets nothing', @r);
    ok count_on('backend1', @r) < 20, 'nor is it honoured (byrequests rotates)' or diag spread(@r);

    bm_post('managed', b_lbm => 'affinity');
    every_is('200 backend[123] served', 'back to affinity: new sessions get a cookie again',
             run_n(20, $M));
    every_is('200 backend2 nocookie', 'and a session sticks', with_cookie(20, $M, $id{backend2}));
}
