# Learn mode: a flood of NAME values that no member issued (issue 19, item
# 2).  Only a member's Set-Cookie creates a store entry; a value without an
# entry is hashed to a member and NOT stored, so random values cannot fill
# the store and evict the sessions learned.  Private front ends
# (t/lib/LearnHarness.pm):
#   - shmcb of 64 KiB (about 900 entries): 40 sessions learned, then 2,000
#     requests with random values: every session still on its member, valid
#   - redis-server on a free 127.0.0.1 port: 20 sessions learned, 500 random
#     values: not one key more in Redis (redis-cli counts the affinity: keys)
#   - the random values are hashed the same way every time (unknown twice,
#     one member), and a member echoing a value the client came with does
#     learn it (the member issued it)
#   - a learned session whose member is down still has its entry rewritten
# Runs in the suite's event pass only (it starts its own front ends).
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use File::Spec;
use File::Path qw(remove_tree make_path);
use LWP::UserAgent;
use Time::HiRes qw(time);
use lib 't/lib';
use LearnHarness;

my $mpm = Apache::Test::config()->{server}{mpm} // '';
if ($mpm ne 'event') {
    plan skip_all => 'runs its own front ends: once, in the event pass';
}
my $redis = LearnHarness::have_redis() && -x '/usr/bin/redis-cli';
plan tests => 8 + ($redis ? 4 : 0);
diag 'redis-server or redis-cli is not installed: the Redis half is skipped'
    unless $redis;

my $module = File::Spec->rel2abs(Apache::Test::vars('serverroot') . '/../.libs/mod_affinity.so');
my $top = File::Spec->rel2abs(Apache::Test::vars('t_logs') . '/learn-flood');
remove_tree($top);
make_path($top);
my $RUN = "$$-" . int(rand(1e6));
my (@fes, @daemons);
END {
    local $?;
    LearnHarness::stop($_) for @fes;
    LearnHarness::stop_store($_) for @daemons;
}

sub get { LearnHarness::get(@_) }
sub backend { LearnHarness::backend($_[0]) }
sub st { LearnHarness::status($_[0]) }

# keep-alive for the flood: bounded by count, 10 s per request at most
my $UA = LWP::UserAgent->new(timeout => 10, keep_alive => 4);
sub flood {
    my ($fe, $n, $tag) = @_;
    my $bad = 0;
    for my $i (1 .. $n) {
        my $v = sprintf '%s%d-%08x%08x', $tag, $i, int(rand(2**32)), int(rand(2**32));
        my $r = $UA->get(LearnHarness::url($fe, '/app/hello.txt'), Cookie => "SID=$v");
        $bad++ if $r->code != 200 || st($r) ne 'unknown';
    }
    return $bad;
}

sub learn_many {
    my ($fe, $n, $tag) = @_;
    my %s;
    $s{"$tag$_-$RUN"} = LearnHarness::learn_session($fe, "$tag$_-$RUN") for 1 .. $n;
    return \%s;
}

# sessions still routed to their member, with status valid
sub still_there {
    my ($fe, $s) = @_;
    my $ok = 0;
    for my $v (keys %$s) {
        my $r = get($fe, '/app/hello.txt', Cookie => "SID=$v");
        $ok++ if backend($r) eq $s->{$v} && st($r) eq 'valid';
    }
    return $ok;
}

# ---- shmcb --------------------------------------------------------------------
{
    my $fe = LearnHarness::frontend(module => $module, dir => "$top/shmcb",
                                    mpm => 'event',
                                    store => "shmcb:$top/shmcb/store(65536)");
    push @fes, $fe;
    ok(LearnHarness::start($fe), 'shmcb of 64 KiB: a front end starts')
        or diag $LearnHarness::LAST_ERROR;
    my $s = learn_many($fe, 40, 'f');
    is(still_there($fe, $s), 40, '40 sessions learned');

    my $t0 = time;
    my $bad = flood($fe, 2000, 'x');
    is($bad, 0, sprintf '2,000 requests with random values: all 200 and unknown (%.1f s)', time - $t0);
    is(still_there($fe, $s), 40, 'every learned session is still on its member (valid)');

    # the same unknown value twice: hashed alike, stored neither time
    my @r = map { get($fe, '/app/hello.txt', Cookie => "SID=same-$RUN") } 1 .. 3;
    ok(!grep({ st($_) ne 'unknown' || backend($_) ne backend($r[0]) } @r),
       'an unknown value: unknown every time, on one member')
        or diag join ' ', map { st($_) . '@' . backend($_) } @r;

    # the member sets the value the client came with: the member issued it
    my $e = "echo-$RUN";
    my $r = get($fe, '/app/hello.txt', Cookie => "SID=$e", 'X-Set1' => "SID=$e; Path=/");
    my $m = backend($r);
    @r = map { get($fe, '/app/hello.txt', Cookie => "SID=$e") } 1 .. 3;
    ok(st($r) eq 'unknown' && !grep({ st($_) ne 'valid' || backend($_) ne $m } @r),
       'a value the member sets back is learned')
        or diag join ' ', st($r), map { st($_) . '@' . backend($_) } @r;

    # a learned session whose member is not usable moves, and its entry
    # follows it (the entry existed): still there once the member is back
    my $mv = "mv-$RUN";
    LearnHarness::learn_session($fe, $mv, 'm1');
    LearnHarness::edit($fe, 'm1', w_status_D => 1);
    $r = get($fe, '/app/hello.txt', Cookie => "SID=$mv");
    my $to = backend($r);
    LearnHarness::edit($fe, 'm1', w_status_D => 0);
    my $back = get($fe, '/app/hello.txt', Cookie => "SID=$mv");
    ok(st($r) eq 'down' && $to ne 'm1' && st($back) eq 'valid' && backend($back) eq $to,
       'a learned session moved off a disabled member keeps its new member (entry rewritten)')
        or diag st($r) . "\@$to, then " . st($back) . '@' . backend($back);
    unlike(LearnHarness::error_log($fe), qr/AH00052|segfault|\[(emerg|crit|alert)\]/,
           'nothing alarming in the error log');
    LearnHarness::stop($fe);
}

# ---- Redis --------------------------------------------------------------------
if ($redis) {
    my $store = LearnHarness::start_store('redis', "$top/redis-daemon");
    push @daemons, $store;
    my $keys = sub {
        my @k = `/usr/bin/redis-cli -h 127.0.0.1 -p $store->{port} --scan --pattern 'affinity:*' 2>/dev/null`;
        return scalar @k;
    };
    my $fe = LearnHarness::frontend(module => $module, dir => "$top/redis",
                                    mpm => 'event', store => $store->{spec});
    push @fes, $fe;
    ok(LearnHarness::start($fe), 'Redis: a front end starts')
        or diag $LearnHarness::LAST_ERROR;
    my $s = learn_many($fe, 20, 'r');
    my $before = $keys->();
    is($before, 20, '20 sessions learned: 20 affinity: keys');
    my $bad = flood($fe, 500, 'y');
    my $after = $keys->();
    ok($bad == 0 && $after == $before,
       "500 requests with random values: no key created ($before keys before, $after after)")
        or diag "$bad requests not 200/unknown";
    is(still_there($fe, $s), 20, 'every learned session is still on its member');
    LearnHarness::stop($fe);
}
