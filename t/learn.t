# Learn mode: AffinityMode learn SID with the default store (shmcb)
# (t/conf/learn.conf.in).  The members send back as Set-Cookie whatever the
# request's X-Set1..4 ask for, and say which Cookie header they saw.
#   lrn    lrn1..3 (routes l1..l3), growth=1: live edits happen here
#   lrnb   the same members under another balancer name
#   lrnto  AffinityStoreTimeout 4
# Every block restores what it changed; every block uses its own values.
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use Apache::TestRequest;
use File::Spec;
use Time::HiRes qw(sleep);
use lib 't/lib';
use AffinityTest;

plan tests => 44;

my $P = '/lrn/hello.txt';
my $RUN = "$$-" . int(rand(1e6));      # values unique to this run

sub st { return $_[0]->header('X-Affinity-Status') // '' }
sub seen { return $_[0]->header('X-Seen-Cookie') // '' }
sub set_cookies { my @c = $_[0]->header('Set-Cookie'); return @c }
sub spread { my %n; $n{ backend($_) }++ for @_; join ', ', map { "$_=$n{$_}" } sort keys %n }
sub run_n { my ($n, $path, @h) = @_; return map { fetch($path, @h) } 1 .. $n }
sub one_member {
    my %b = map { backend($_) => 1 } @_;
    my @b = keys %b;
    return @b == 1 && $b[0] ? $b[0] : undef;
}
sub statuses { my %s; $s{ st($_) }++ for @_; join ', ', map { "$_=$s{$_}" } sort keys %s }
sub edit { my ($balancer, $member, %p) = @_; bm_post($balancer, w => member_url($member), %p) }

# A session learned on $want (new sessions rotate: a few tries suffice)
sub learn_on {
    my ($want, $value, $path) = @_;
    $path //= $P;
    for (1 .. 9) {
        my $r = fetch($path, 'X-Set1' => "SID=$value; Path=/; HttpOnly");
        return $r if backend($r) eq $want;
    }
    die "could not learn $value on $want\n";
}

sub trace_count {
    my ($tag) = @_;
    return scalar grep { /\Q$tag\E/ } log_lines('error_log');
}

# ---- no cookie: new sessions, by lbfactor; nothing of ours is set --------
{
    my @r = run_n(30, "$P?new");
    my %n;
    $n{ backend($_) }++ for @r;
    ok(keys(%n) == 3 && !grep({ $_ != 10 } values %n),
       'no SID: new sessions spread as byrequests (10 each)') or diag spread(@r);
    ok(!grep({ st($_) ne 'new' } @r), 'AFFINITY_STATUS=new') or diag statuses(@r);
    ok(!grep({ set_cookies($_) } @r), 'the module sets no cookie of its own');
}

# ---- learning and choice -------------------------------------------------------
{
    my $v = "a-$RUN";
    my $r = learn_on('lrn2', $v);
    is_deeply([set_cookies($r)], ["SID=$v; Path=/; HttpOnly"],
              "the member's Set-Cookie goes out byte for byte");
    my @r = run_n(20, $P, Cookie => "x=1; SID=$v; y=2");
    is(one_member(@r), 'lrn2', 'a learned value: every request on the member that set it') or diag spread(@r);
    ok(!grep({ st($_) ne 'valid' } @r), 'AFFINITY_STATUS=valid') or diag statuses(@r);
    is(seen($r[0]), "x=1; SID=$v; y=2", 'the member sees the Cookie header as sent');

    # other balancer name: its own table
    my @b = run_n(3, '/lrnb/hello.txt', Cookie => "SID=$v");
    is(st($b[0]), 'unknown', 'another balancer has not learned the value (keys include its name)');

    # several values: the first with an entry naming a usable member
    my $w = "b-$RUN";
    learn_on('lrn3', $w);
    $r = fetch($P, Cookie => "SID=never-$RUN; SID=$w; SID=$v");
    is(backend($r), 'lrn3', 'several SID values: the first one learned wins');
    is(st($r), 'valid', 'status valid');

    # any status: a 404 that sets a cookie teaches too
    my $e = "e-$RUN";
    $r = fetch('/lrn/no-such-file', 'X-Set1' => "SID=$e");
    is($r->code, 404, 'a 404 from the member');
    my $m404 = backend($r);
    @r = run_n(5, $P, Cookie => "SID=$e");
    is(one_member(@r), $m404, 'its Set-Cookie was learned all the same');

    # ProxyErrorOverride: the member's error answer replaced by httpd's page
    $r = fetch('/lrnerr/no-such-file', 'X-Set1' => "SID=o-$RUN");
    is($r->code, 404, 'ProxyErrorOverride: an error page after the member answered');
    my $mo = backend($r) || undef;
    @r = run_n(3, $P, Cookie => "SID=o-$RUN");
    is(st($r[0]), 'valid', 'its cookie was learned too');

    # a new value set on a learned session (session ID regenerated)
    learn_on('lrn1', "c-$RUN");
    $r = fetch($P, Cookie => "SID=c-$RUN", 'X-Set1' => "SID=c2-$RUN; Path=/");
    @r = run_n(5, $P, Cookie => "SID=c2-$RUN");
    is(one_member(@r), 'lrn1', 'a regenerated value is learned on the member that set it');
}

# ---- no entry: rendezvous hashing of the value, and nothing is stored --------
{
    my @r = run_n(10, $P, Cookie => "SID=u-$RUN");
    my $h = one_member(@r);
    ok($h, 'a value never learned: every request on one member') or diag spread(@r);
    is(st($r[0]), 'unknown', 'the first says unknown');
    ok(!grep({ st($_) ne 'unknown' } @r[1 .. $#r]),
       'the rest unknown too: only a member\'s Set-Cookie creates an entry') or diag statuses(@r);
    my %n;
    $n{ backend(fetch($P, Cookie => "SID=s$_-$RUN")) }++ for 1 .. 60;
    ok(keys(%n) == 3 && !grep({ $_ < 8 } values %n),
       'sixty unknown values spread over the three members') or diag join ', ', %n;
}

# ---- deletions -----------------------------------------------------------------
{
    my $i = 0;
    for my $del ('SID=; Path=/', 'SID=x; Max-Age=0', 'SID=y; Expires=Thu, 01 Jan 1970 00:00:00 GMT') {
        my $v = "d$i-$RUN";
        $i++;
        learn_on('lrn1', $v);
        my $r = fetch($P, Cookie => "SID=$v", 'X-Set1' => $del);
        is_deeply([set_cookies($r)], [$del], "deletion \"$del\" passes untouched");
        $r = fetch($P, Cookie => "SID=$v");
        is(st($r), 'unknown', '... and removes the entry');
    }
}

# ---- balancer-manager: moves, with the entry updated ---------------------------
{
    my $v = "m-$RUN";
    learn_on('lrn1', $v);
    edit('lrn', 'lrn1', w_status_D => 1);
    my @r = run_n(10, $P, Cookie => "SID=$v");
    my $to = one_member(@r);
    ok($to && $to ne 'lrn1', 'lrn1 disabled live: its session moves to one member') or diag spread(@r);
    is(st($r[0]), 'down', 'the first says down');
    ok(!grep({ st($_) ne 'valid' } @r[1 .. $#r]), 'then valid: the entry names the new member') or diag statuses(@r);
    edit('lrn', 'lrn1', w_status_D => 0);
    @r = run_n(5, $P, Cookie => "SID=$v");
    is(one_member(@r), $to, 'lrn1 enabled again: the session stays on its new member');

    # Route Redirect
    my $rv = "r-$RUN";
    learn_on('lrn1', $rv);
    edit('lrn', 'lrn1', w_rr => 'l3', w_status_D => 1);
    @r = run_n(5, $P, Cookie => "SID=$rv");
    is(one_member(@r), 'lrn3', 'Route Redirect: the session goes where lrn1 redirects');
    edit('lrn', 'lrn1', w_rr => '', w_status_D => 0);
    is(backend(fetch($P, Cookie => "SID=$rv")), 'lrn3', 'and its entry was updated');

    # nofailover
    my $nv = "n-$RUN";
    learn_on('lrn2', $nv);
    bm_post('lrn', b_sforce => 1);
    edit('lrn', 'lrn2', w_status_D => 1);
    my $r = fetch($P, Cookie => "SID=$nv");
    is($r->code, 503, 'nofailover: a session on a disabled member gets 503');
    $r = fetch($P, Cookie => "SID=nf-new-$RUN");
    is($r->code, 200, 'an unknown value is still served');
    edit('lrn', 'lrn2', w_status_D => 0);
    bm_post('lrn', b_sforce => 0);
    is(backend(fetch($P, Cookie => "SID=$nv")), 'lrn2', 'the entry was left alone');

    # drain: existing sessions stay, unknown ones avoid it
    my $dv = "dr-$RUN";
    learn_on('lrn3', $dv);
    edit('lrn', 'lrn3', w_status_N => 1);
    @r = run_n(5, $P, Cookie => "SID=$dv");
    is(one_member(@r), 'lrn3', 'a draining member keeps its sessions');
    my %n;
    $n{ backend(fetch($P, Cookie => "SID=dh$_-$RUN")) }++ for 1 .. 30;
    ok(!$n{lrn3}, 'and is given no unknown ones') or diag join ', ', %n;
    edit('lrn', 'lrn3', w_status_N => 0);

    # route edited live: entries name route IDs, so they follow the route
    my $ev = "rt-$RUN";
    learn_on('lrn3', $ev);
    edit('lrn', 'lrn3', w_wr => 'l9');
    $r = fetch($P, Cookie => "SID=$ev");
    is(st($r), 'unknown', 'route edited live: the old entry names no member');
    my $now = backend($r);
    $r = fetch($P, Cookie => "SID=$ev");
    ok(st($r) eq 'valid' && backend($r) eq $now, 'and is replaced by the member it went to');
    edit('lrn', 'lrn3', w_wr => 'l3');
}

# ---- timeout: idle entries are forgotten; use keeps them; no write storms ------
{
    my $T = '/lrnto/hello.txt';
    my $v = "t-$RUN";
    learn_on('lrn2', $v, $T);
    sleep 5.2;
    my $r = fetch($T, Cookie => "SID=$v");
    is(st($r), 'unknown', 'idle longer than AffinityStoreTimeout 4: forgotten');

    my $k = "k-$RUN";
    learn_on('lrn2', $k, $T);
    my $ok = 1;
    for (1 .. 5) {
        sleep 1.5;
        $r = fetch($T, Cookie => "SID=$k");
        $ok &&= st($r) eq 'valid' && backend($r) eq 'lrn2';
    }
    ok($ok, 'used every 1.5 s for 7.5 s (timeout 4): still valid, on its member');

    my $q = "q-$RUN";
    learn_on('lrn1', $q);
    my $before = trace_count('AFF0098');
    run_n(20, $P, Cookie => "SID=$q", 'X-Set1' => "SID=$q; Path=/");
    wait_until(2, sub { 0 });
    is(trace_count('AFF0098') - $before, 0,
       '20 hits, the application re-setting the same value: no store write (fresh entry)');
}

# ---- hostile values ------------------------------------------------------------
{
    my @hostile = ('SID=' . ('~' x 3000), 'SID="', 'SID=' . ("\x80" x 10),
                   join('; ', map { "SID=h$_" } 1 .. 200), 'SID=' . ('x' x 7000));
    my @codes = map { fetch("$P?hostile", Cookie => $_)->code } @hostile;
    ok(!grep({ $_ != 200 } @codes), 'hostile SID values: every one served') or diag "@codes";
    my $r = fetch($P, 'X-Set1' => 'SID=' . ('z' x 3000));
    is($r->code, 200, 'a huge Set-Cookie value is learned without trouble');
}

# ---- the session value never appears in the logs ------------------------------
{
    my $text = error_log_text();
    ok($text !~ /a-\Q$RUN\E|m-\Q$RUN\E|u-\Q$RUN\E/, 'no session value in the error log (trace2)');
}
