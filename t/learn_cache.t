# Learn mode's per-child cache of store answers (AffinityStoreCacheTime,
# issue 21), with memcached and redis-server started here on free
# 127.0.0.1 ports and private front ends (t/lib/LearnHarness.pm):
#   - the cache is on: a session's requests do not each ask the store
#   - two front ends on one store (A event, B prefork): a session learned
#     through A, or moved by A (its member disabled there), is followed by B
#     within 1 s, though B had looked it up (and kept the answer) before
#   - within one front end nothing waits for the bound: a move or a
#     deletion made by one child is seen by every child at the next request
#   - the bound itself: an entry changed in the store behind httpd's back
#     (the store's own protocol) is followed within the bound plus a margin
#   - AffinityStoreCacheTime with a bad value stops httpd at startup
# LEARN_CACHE_TIME=MS sets the directive on the front ends (default: not
# set, so the default bound is tested); LEARN_CACHE_TIME=3000 shows the 1 s
# checks failing.  Runs in the suite's event pass only.
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use File::Spec;
use File::Path qw(remove_tree);
use IO::Socket::INET;
use LWP::UserAgent;
use Time::HiRes qw(sleep time);
use lib 't/lib';
use LearnHarness;

my $mpm = Apache::Test::config()->{server}{mpm} // '';
if ($mpm ne 'event') {
    plan skip_all => 'runs its own prefork and event front ends: once, in the event pass';
}
my @stores = ((LearnHarness::have_memcached() ? 'memcache' : ()),
              (LearnHarness::have_redis() ? 'redis' : ()));
@stores = grep { $_ =~ /$ENV{LEARN_STORES}/ } @stores if $ENV{LEARN_STORES};
plan tests => 2 + 10 * @stores;
diag 'memcached or redis-server is not installed (tools/setup installs them): '
   . 'their tests are skipped' if @stores < 2;

my $ms = $ENV{LEARN_CACHE_TIME};
my $bound = (defined $ms ? $ms : 500) / 1000;
my @extra = defined $ms ? ("AffinityStoreCacheTime $ms") : ();

my $module = File::Spec->rel2abs(Apache::Test::vars('serverroot') . '/../.libs/mod_affinity.so');
my $top = File::Spec->rel2abs(Apache::Test::vars('t_logs') . '/learn-cache');
remove_tree($top);
my $RUN = "$$-" . int(rand(1e6));
my (@started, @daemons);
END {
    LearnHarness::stop($_) for @started;
    LearnHarness::stop_store($_) for @daemons;
}

sub fe {
    my $fe = LearnHarness::frontend(module => $module, extra => [@extra], @_);
    push @started, $fe;
    return $fe;
}
sub get { LearnHarness::get($_[0], '/app/hello.txt', Cookie => "SID=$_[1]") }
# on one kept-alive connection: one child answers them all, the one that
# kept the answer
my $KA = LWP::UserAgent->new(keep_alive => 1, timeout => 10);
sub get_ka {
    $KA->get(LearnHarness::url($_[0], '/app/hello.txt'), Cookie => "SID=$_[1]");
}
sub backend { LearnHarness::backend($_[0]) }
sub st { LearnHarness::status($_[0]) }

# Polls $fe with value $v (every 20 ms, for $window seconds from $t0),
# in turn on the kept-alive connection and on new ones (other children):
# how long after $t0 the last request that did not go to member $want with
# status valid came (0: none did), or undef if the last one still did not.
sub settles {
    my ($fe, $v, $want, $t0, $window) = @_;
    my ($last, $ok, $n) = (0, 0, 0);
    while (time - $t0 < $window) {
        my $r = $n++ % 2 ? get($fe, $v) : get_ka($fe, $v);
        $ok = backend($r) eq $want && st($r) eq 'valid';
        $last = time - $t0 unless $ok;
        sleep 0.02;
    }
    return $ok ? $last : undef;
}

sub took { defined $_[0] ? sprintf('last stale answer at %.2f s', $_[0]) : 'still stale' }

# ---- the store's own protocol (binary-safe), to change entries behind
# httpd's back --------------------------------------------------------------
sub store_conn {
    my ($store) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$store->{port}",
                                  Timeout => 5) or die "store: $!";
    binmode $s;
    return $s;
}

sub readn {
    my ($s, $n) = @_;
    my $buf = '';
    while (length($buf) < $n) {
        my $got = read($s, $buf, $n - length($buf), length($buf));
        die 'store: short read' unless $got;
    }
    return $buf;
}

sub redis_cmd {
    my ($s, @args) = @_;
    print $s '*' . @args . "\r\n" . join('', map { '$' . length($_) . "\r\n$_\r\n" } @args);
    return redis_reply($s);
}

sub redis_reply {
    my ($s) = @_;
    my $line = <$s>;
    die 'store: no reply' unless defined $line;
    $line =~ s/\r\n\z//;
    my ($t, $rest) = (substr($line, 0, 1), substr($line, 1));
    return $rest if $t eq '+' || $t eq ':';
    die "store: $rest" if $t eq '-';
    if ($t eq '$') {
        return undef if $rest < 0;
        my $data = readn($s, $rest + 2);
        return substr($data, 0, $rest);
    }
    return [ map { redis_reply($s) } 1 .. $rest ] if $t eq '*';
    die "store: unexpected reply $line";
}

sub store_keys {
    my ($store) = @_;
    my $s = store_conn($store);
    if ($store->{kind} eq 'redis') {
        return @{ redis_cmd($s, 'KEYS', '*') };
    }
    print $s "lru_crawler metadump all\r\n";
    my @k;
    while (my $l = <$s>) {
        last if $l =~ /^END/;
        push @k, $1 =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ger if $l =~ /^key=(\S+)/;
    }
    return @k;
}

sub store_get {
    my ($store, $key) = @_;
    my $s = store_conn($store);
    return redis_cmd($s, 'GET', $key) if $store->{kind} eq 'redis';
    print $s "get $key\r\n";
    my $l = <$s>;
    return undef unless $l =~ /^VALUE \S+ \d+ (\d+)/;
    return substr(readn($s, $1 + 2), 0, $1);
}

sub store_set {
    my ($store, $key, $value) = @_;
    my $s = store_conn($store);
    return redis_cmd($s, 'SET', $key, $value) eq 'OK' if $store->{kind} eq 'redis';
    print $s "set $key 0 0 " . length($value) . "\r\n$value\r\n";
    return (<$s> // '') =~ /^STORED/;
}

# lookups the store has answered so far
sub store_gets {
    my ($store) = @_;
    my $s = store_conn($store);
    if ($store->{kind} eq 'redis') {
        my $info = redis_cmd($s, 'INFO', 'commandstats');
        return $info =~ /^cmdstat_get:calls=(\d+)/m ? $1 : 0;
    }
    print $s "stats\r\n";
    my $n = -1;
    while (my $l = <$s>) {
        $n = $1 if $l =~ /^STAT cmd_get (\d+)/;
        last if $l =~ /^END/;
    }
    return $n;
}

# the store key a session learned through $fe was written to
sub learn_with_key {
    my ($fe, $store, $v, $want) = @_;
    my %before = map { $_ => 1 } store_keys($store);
    my $m = LearnHarness::learn_session($fe, $v, $want);
    my @new;
    LearnHarness::wait_for(2, sub { @new = grep { !$before{$_} } store_keys($store); @new == 1 });
    return ($m, $new[0]);
}

# ---- a bad value -------------------------------------------------------------
{
    my $c = LearnHarness::frontend(module => $module, dir => "$top/bad",
                                   extra => ['AffinityStoreCacheTime 2s']);
    my ($rc, $out) = LearnHarness::httpd_run($c, '-t');
    isnt($rc, 0, 'AffinityStoreCacheTime 2s: refused at startup');
    like($out, qr/AffinityStoreCacheTime: "2s" is not a number of milliseconds from 0 \(no cache\) to 60000/,
         'with a message naming the directive and the range');
}

for my $kind (@stores) {
    my $store = LearnHarness::start_store($kind, "$top/$kind-daemon");
    push @daemons, $store;
    my $a = fe(dir => "$top/$kind-a", mpm => 'event', store => $store->{spec});
    my $b = fe(dir => "$top/$kind-b", mpm => 'prefork', store => $store->{spec});
    ok(LearnHarness::start($a) && LearnHarness::start($b),
       "$kind: two front ends (event, prefork) on one store") or diag $LearnHarness::LAST_ERROR;

    # the cache is on: 40 requests of one session, a few lookups at most
    my $c = "c-$RUN";
    my $cm = LearnHarness::learn_session($a, $c);
    my $g0 = store_gets($store);
    my @r = map { get($a, $c) } 1 .. 40;
    my $gets = store_gets($store) - $g0;
    my $all = !grep { backend($_) ne $cm || st($_) ne 'valid' } @r;
    if (defined $ms && $ms == 0) {
        ok($all && $gets == 40, "$kind: AffinityStoreCacheTime 0: 40 requests, 40 lookups")
            or diag "$gets lookups";
    }
    else {
        ok($all && $gets < 20, "$kind: 40 requests of one session, valid, $gets store lookups (the cache answers)")
            or diag "$gets lookups";
    }

    # learned through A: B had looked the value up (no entry) and follows
    my $w = "w-$RUN";
    my $hashed = backend(get($b, $w));
    get($b, $w) for 1 .. 5;
    my $want = (grep { $_ ne $hashed } qw(m1 m2 m3))[0];
    my $wm = LearnHarness::learn_session($a, $w, $want) // '';
    my $t0 = time;
    my $took = settles($b, $w, $wm, $t0, 1.5);
    ok($wm eq $want && defined $took && $took < 1,
       "$kind: a session learned through A is followed by B within 1 s (" . took($took) . ')')
        or diag "learned on '$wm'";

    # moved by A: B kept the old answer and follows within 1 s
    my $v = "v-$RUN";
    my $vm = LearnHarness::learn_session($a, $v, 'm1') // '';
    my @warm = ((map { get($b, $v) } 1 .. 20), (map { get_ka($b, $v) } 1 .. 20));
    ok($vm eq 'm1' && !grep({ backend($_) ne 'm1' || st($_) ne 'valid' } @warm),
       "$kind: B routes A's session to m1 (and keeps the answer)");
    LearnHarness::edit($a, 'm1', w_status_D => 1);
    my $mv = get($a, $v);
    $t0 = time;
    my $to = backend($mv);
    LearnHarness::edit($a, 'm1', w_status_D => 0);
    my @at_once = map { get($a, $v) } 1 .. 12;
    ok(st($mv) eq 'down' && $to ne 'm1'
       && !grep({ backend($_) ne $to || st($_) ne 'valid' } @at_once),
       "$kind: A moves it off m1, and every child of A follows at once")
        or diag join ' ', st($mv), $to, map { backend($_) . '/' . st($_) } @at_once;
    $took = settles($b, $v, $to, $t0, 1.5);
    ok(defined $took && $took < 1, "$kind: B follows the move within 1 s (" . took($took) . ')');
    my @after = map { get($b, $v) } 1 .. 10;
    ok(!grep({ backend($_) ne $to || st($_) ne 'valid' } @after),
       "$kind: and stays there (no child of B goes back)");

    # a deletion through A: every child of A forgets at once
    my $d = "d-$RUN";
    LearnHarness::learn_session($a, $d);
    get($a, $d) for 1 .. 20;
    LearnHarness::get($a, '/app/hello.txt', Cookie => "SID=$d", 'X-Set1' => 'SID=; Max-Age=0');
    my @gone = map { st(get($a, $d)) } 1 .. 12;
    ok(!grep({ $_ ne 'unknown' } @gone), "$kind: a deletion is seen by every child of A at once")
        or diag "@gone";

    # behind httpd's back: the entry of x1 (on m1) rewritten to x2's (m2)
    my ($x1m, $k1) = learn_with_key($a, $store, "x1-$RUN", 'm1');
    my ($x2m, $k2) = learn_with_key($a, $store, "x2-$RUN", 'm2');
    my $e2 = defined $k2 ? store_get($store, $k2) : undef;
    @warm = ((map { get($a, "x1-$RUN") } 1 .. 20), (map { get_ka($a, "x1-$RUN") } 1 .. 20));
    my $set = defined $k1 && defined $e2 && store_set($store, $k1, $e2);
    $t0 = time;
    ok($set && ($x1m // '') eq 'm1' && ($x2m // '') eq 'm2'
       && !grep({ backend($_) ne 'm1' } @warm),
       "$kind: x1's entry (m1) rewritten in the store to x2's (m2), by the store's protocol");
    $took = settles($a, "x1-$RUN", 'm2', $t0, $bound + 1);
    ok(defined $took && $took < $bound + 0.4,
       sprintf("%s: A follows it within the bound (%.1f s) and a margin of 0.4 s (%s)",
               $kind, $bound, took($took)));

    LearnHarness::stop($_) for $a, $b;
    LearnHarness::stop_store($store);
}
