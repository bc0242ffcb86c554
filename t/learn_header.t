# Learn mode on a header (AffinityMode learn header:Sid) on private front
# ends (t/lib/LearnHarness.pm): the members send back the request's
# X-Hdr1..2 as response header Sid (Header always: on errors too) and say
# which Sid they saw (X-Seen-Sid).  With each store (shmcb, memcached,
# Redis): learning, valid, unknown values hashed and never stored, the
# header never modified, several values, a moved session's 404 and the
# re-learn; a header value never shares an entry with a cookie value of the
# same bytes (memcached and Redis: a cookie-learning front end on the same
# store).  Once: a header in err_headers_out, `learn cookie:NAME`, and the
# directive's refusals.
# Runs in the suite's event pass only (it starts its own MPMs).
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use File::Spec;
use File::Path qw(remove_tree);
use lib 't/lib';
use LearnHarness;

my $mpm = Apache::Test::config()->{server}{mpm} // '';
my @stores = ('shmcb',
              (LearnHarness::have_memcached() ? 'memcache' : ()),
              (LearnHarness::have_redis() ? 'redis' : ()));
if ($mpm ne 'event') {
    plan skip_all => 'runs its own front ends: once, in the event pass';
}
my $PER_STORE = 13;
my $SHARED = 2;                 # memcache, redis: key separation
plan tests => $PER_STORE * @stores + $SHARED * (@stores - 1) + 3 + 3 + 8;
diag 'memcached or redis-server is not installed (tools/setup installs them): '
   . 'their tests are skipped' if @stores < 3;

my $module = File::Spec->rel2abs(Apache::Test::vars('serverroot') . '/../.libs/mod_affinity.so');
my $top = File::Spec->rel2abs(Apache::Test::vars('t_logs') . '/learn-header');
remove_tree($top);
my $RUN = "$$-" . int(rand(1e6));
my (@started, @daemons);
END {
    my $rc = $?;                # waitpid below would set the test's exit code
    LearnHarness::stop($_) for @started;
    LearnHarness::stop_store($_) for @daemons;
    $? = $rc;
}

sub fe {
    my (%o) = @_;
    my $fe = LearnHarness::frontend(module => $module, %o);
    push @started, $fe;
    return $fe;
}
sub get { LearnHarness::get(@_) }
sub backend { LearnHarness::backend($_[0]) }
sub st { LearnHarness::status($_[0]) }

# A new session whose member issued header Sid $v: its member ($want, or
# any).  New sessions rotate by lbfactor: a few tries suffice.
sub learn_hdr {
    my ($fe, $v, $want, $path) = @_;
    for (1 .. 12) {
        my $r = get($fe, $path // '/app/hello.txt', 'X-Hdr1' => $v);
        return backend($r) if !defined $want || backend($r) eq $want;
    }
    return '';
}

for my $kind (@stores) {
    my $store = $kind eq 'shmcb' ? undef
              : LearnHarness::start_store($kind, "$top/$kind-daemon");
    push @daemons, $store if $store;
    my $spec = $store ? $store->{spec} : undef;
    my $fe = fe(dir => "$top/$kind", mpm => $kind eq 'memcache' ? 'prefork' : 'event',
                store => $spec, cookie => 'header:Sid');
    ok(LearnHarness::start($fe), "$kind: a front end with learn header:Sid starts")
        or diag $LearnHarness::LAST_ERROR;

    my $r = get($fe, '/app/hello.txt');
    is(st($r), 'new', "$kind: no header Sid: a new session");

    # learned from the member's response header, then looked up
    my $v = "h-$kind-$RUN";
    is(learn_hdr($fe, $v, 'm2'), 'm2', "$kind: member m2 issues header Sid");
    my @r = map { get($fe, '/app/hello.txt', Sid => $v) } 1 .. 10;
    ok(!grep({ backend($_) ne 'm2' || st($_) ne 'valid' } @r),
       "$kind: requests carrying it stick to m2 (valid)")
        or diag join ' ', map { backend($_) . '/' . st($_) } @r;
    is($r[0]->header('X-Seen-Sid'), $v, "$kind: the member sees the header as sent");

    # a value no member issued: hashed, never stored
    my $u = "u-$kind-$RUN";
    @r = map { get($fe, '/app/hello.txt', Sid => $u) } 1 .. 5;
    ok(!grep({ st($_) ne 'unknown' || backend($_) ne backend($r[0]) } @r),
       "$kind: a value no member issued is hashed, never stored");

    # several values: two header lines (httpd joins them) and a list
    $r = get($fe, '/app/hello.txt', Sid => "x1-$RUN", Sid => $v);
    ok(backend($r) eq 'm2' && st($r) eq 'valid',
       "$kind: two Sid lines, the second learned: valid on m2")
        or diag backend($r) . '/' . st($r);
    $r = get($fe, '/app/hello.txt', Sid => "x2-$RUN, $v");
    ok(backend($r) eq 'm2' && st($r) eq 'valid', "$kind: one line listing two values: valid on m2");

    # a cookie of the same name is not the carrier
    $r = get($fe, '/app/hello.txt', Cookie => "Sid=$v");
    is(st($r), 'new', "$kind: a cookie Sid is not read in header mode");

    # any status: a 404 carrying the header is learned
    my $w = "w-$kind-$RUN";
    my $m404 = learn_hdr($fe, $w, undef, '/app/no-such-file');
    @r = map { get($fe, '/app/hello.txt', Sid => $w) } 1 .. 5;
    ok($m404 && !grep({ backend($_) ne $m404 || st($_) ne 'valid' } @r),
       "$kind: a header Sid on a 404 is learned too ($m404)");

    # m2 disabled: the session moves; the member it moves to does not know
    # it and answers 404 (as MCP servers do): nothing special, the client
    # starts over and the new header is learned
    LearnHarness::edit($fe, 'm2', w_status_D => 1);
    $r = get($fe, '/app/no-such-file', Sid => $v);
    ok($r->code == 404 && backend($r) ne 'm2' && st($r) eq 'down',
       "$kind: m2 disabled: the session moves (down), its new member answers 404")
        or diag $r->code . ' ' . backend($r) . '/' . st($r);
    my $v2 = "h2-$kind-$RUN";
    my $m2 = learn_hdr($fe, $v2);
    @r = map { get($fe, '/app/hello.txt', Sid => $v2) } 1 .. 10;
    ok($m2 && $m2 ne 'm2' && !grep({ backend($_) ne $m2 || st($_) ne 'valid' } @r),
       "$kind: the client starts over: its new header is learned and sticks ($m2)");
    LearnHarness::edit($fe, 'm2', w_status_D => 0);

    if ($store) {
        # the same store, balancer name and salt, learning cookie Sid: the
        # header's entry must not be found for a cookie of the same bytes
        my $cfe = fe(dir => "$top/$kind-cookie", store => $spec, cookie => 'Sid');
        ok(LearnHarness::start($cfe), "$kind: a cookie-learning front end on the same store")
            or diag $LearnHarness::LAST_ERROR;
        @r = map { get($cfe, '/app/hello.txt', Cookie => "Sid=$v2") } 1 .. 3;
        ok(!grep({ st($_) ne 'unknown' } @r),
           "$kind: a cookie with the header's value finds no entry (keys differ by carrier)")
            or diag join ' ', map { st($_) } @r;
        LearnHarness::stop($cfe);
    }
    is(get($fe, '/app/hello.txt', Sid => $v2)->header('X-Seen-Sid'), $v2,
       "$kind: the header is never modified");
    LearnHarness::stop($fe);
}

# ---- err_headers_out, cookie:NAME ------------------------------------------------
{
    # a header Sid in err_headers_out when the response leaves (Header always
    # ... early sets it there before the proxy runs)
    my $fe = fe(dir => "$top/err", cookie => 'header:Sid', extra => [
        'Header always set Sid "expr=%{req:X-Front-Sid}" early',
        '<Location "/affinity-status">', 'SetHandler affinity-status', '</Location>']);
    ok(LearnHarness::start($fe), 'a front end (err_headers_out)') or diag $LearnHarness::LAST_ERROR;
    my $e = "e-$RUN";
    my $r = get($fe, '/app/hello.txt', 'X-Front-Sid' => $e);
    my $m = backend($r);
    my @r = map { get($fe, '/app/hello.txt', Sid => $e) } 1 .. 5;
    ok($m && !grep({ backend($_) ne $m || st($_) ne 'valid' } @r),
       "a Sid in err_headers_out is learned ($m)") or diag join ' ', map { backend($_) . '/' . st($_) } @r;
    # the status page names the carrier
    like(get($fe, '/affinity-status?format=json')->content, qr/"cookie":\{"name":"header Sid"/,
         'the status page names the carrier: header Sid');
    LearnHarness::stop($fe);

    my $cfe = fe(dir => "$top/cookie-prefix", cookie => 'cookie:SID');
    ok(LearnHarness::start($cfe), 'learn cookie:SID starts') or diag $LearnHarness::LAST_ERROR;
    my $c = "c-$RUN";
    my $cm = LearnHarness::learn_session($cfe, $c, 'm3');
    @r = map { get($cfe, '/app/hello.txt', Cookie => "SID=$c") } 1 .. 5;
    ok($cm && !grep({ backend($_) ne 'm3' || st($_) ne 'valid' } @r),
       'learn cookie:SID is cookie learning (valid on m3)');
    is(st(get($cfe, '/app/hello.txt', Sid => $c)), 'new', 'and reads no header');
    LearnHarness::stop($cfe);
}

# ---- refusals ------------------------------------------------------------------
for my $case (['header:', qr/AffinityMode learn: "header:" does not name a header; use header:NAME/],
              ['header:Bad(Name', qr/AffinityMode learn: "header:Bad\(Name" does not name a header/],
              ['foo:Sid', qr/AffinityMode learn: "foo:" is not a carrier; use cookie:NAME, header:NAME/],
              ['cookie:', qr/AffinityMode learn: "" is not a valid cookie name|AffinityMode learn needs/]) {
    my $c = fe(dir => "$top/bad-" . scalar(@started), cookie => $case->[0]);
    my ($rc, $out) = LearnHarness::httpd_run($c, '-t');
    isnt($rc, 0, "apachectl -t refuses AffinityMode learn $case->[0]");
    like($out, qr/Syntax error on line \d+ of \S*httpd\.conf:\n$case->[1]/,
         'naming the directive, file and line') or diag $out;
}
