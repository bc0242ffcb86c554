# Learn mode with a store that hangs (t/lib/LearnHarness.pm front ends): the
# store is a listener on 127.0.0.1 that accepts connections, reads the
# command and answers nothing, then closes the connection HOLD seconds
# later (a store that times out), used as AffinityStore memcache and redis.
# While one request's lookup waits for it, other requests to the same
# balancer in the same child must not wait with it: the lookups run before
# mod_proxy_balancer takes the balancer's lock, not in the finder under it.
# One child of 16 threads, so every request meets the same lock.
# (The listener closes by itself: APR's memcache and redis clients, as
# httpd 2.4 uses them, wait for an answer without a time limit.)
# Then, with a real memcached (when installed), that the lookups made
# before the finder are the only ones: one store lookup per learned value,
# two per value without an entry (its key, then its 0.1.0 key).
# Runs in the suite's event pass only (threads share a lock only there).
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use File::Spec;
use File::Path qw(remove_tree make_path);
use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(sleep time);
use lib 't/lib';
use LearnHarness;

my $mpm = Apache::Test::config()->{server}{mpm} // '';
if ($mpm ne 'event') {
    plan skip_all => 'one child of 16 threads: in the event pass';
}
my @kinds = ('memcache', 'redis');
plan tests => 6 * @kinds + 1;

my $module = File::Spec->rel2abs(Apache::Test::vars('serverroot') . '/../.libs/mod_affinity.so');
my $top = File::Spec->rel2abs(Apache::Test::vars('t_logs') . '/learn-hang');
remove_tree($top);
make_path($top);
my $RUN = "$$-" . int(rand(1e6));
my $HOLD = 3;                   # seconds a lookup waits for the store

# The hanging store: notes in a file that a command arrived; stops by
# itself after 60 s.
my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                   Listen => 64, ReuseAddr => 1) or die "listen: $!";
my $hang_port = $listen->sockport;
my $got = "$top/store-got-command";
my $hang_pid = fork // die "fork: $!";
if (!$hang_pid) {
    my %held;                   # fileno => [socket, time of first command]
    my $end = time + 60;
    $listen->blocking(0);
    while (time < $end) {
        while (my $c = $listen->accept) {
            $c->blocking(0);
            $held{fileno $c} = [$c, undef];
        }
        for my $k (keys %held) {
            my ($c, $since) = @{ $held{$k} };
            my $buf;
            my $n = sysread($c, $buf, 4096);
            if (defined $n && $n == 0) {            # the client closed
                close $c;
                delete $held{$k};
                next;
            }
            if ($n && !defined $since) {
                $held{$k}[1] = time;
                open my $o, '>>', $got; print $o "$n\n"; close $o;
            }
            if (defined $held{$k}[1] && time - $held{$k}[1] >= $HOLD) {
                close $c;
                delete $held{$k};
            }
        }
        sleep 0.02;
    }
    POSIX::_exit(0);
}
close $listen;

my @fes;
END {
    local $?;                   # keep the test's exit status
    LearnHarness::stop($_) for @fes;
    if ($hang_pid) { kill 'KILL', $hang_pid; waitpid $hang_pid, 0; }
}

sub get { LearnHarness::get(@_) }
sub timed {
    my $t0 = time;
    my $r = get(@_);
    return ($r, time - $t0);
}

for my $kind (@kinds) {
    unlink $got;
    my $fe = LearnHarness::frontend(
        module => $module, dir => "$top/$kind", mpm => 'event',
        store => "$kind:127.0.0.1:$hang_port",
        extra => ['StartServers 1', 'ServerLimit 1', 'MaxRequestWorkers 16',
                  'MinSpareThreads 1', 'MaxSpareThreads 16']);
    push @fes, $fe;
    ok(LearnHarness::start($fe), "$kind: a front end whose store hangs starts")
        or diag $LearnHarness::LAST_ERROR;

    # one request whose lookup hangs, in the background
    my $bg_file = "$top/$kind-bg";
    my $bg = fork // die;
    if (!$bg) {
        my ($r, $t) = timed($fe, '/app/hello.txt', Cookie => "SID=hang-$RUN");
        open my $o, '>', $bg_file or die;
        printf $o "%d %.3f %s\n", $r->code, $t, LearnHarness::status($r) || '-';
        close $o;
        POSIX::_exit(0);
    }
    # wait until its lookup reached the store (and so waits for it)
    LearnHarness::wait_for(10, sub { -s $got });
    ok(-s $got, "$kind: the lookup reached the store, which does not answer");

    # meanwhile: the same balancer, the same child, requests without the cookie
    my @took;
    my $ok = 1;
    for (1 .. 3) {
        my ($r, $t) = timed($fe, '/app/hello.txt');
        push @took, sprintf '%.2f', $t;
        $ok &&= $r->code == 200;
    }
    my $slowest = (sort { $b <=> $a } @took)[0];
    ok($ok && $slowest < 1.5,
       "$kind: while a lookup hangs, other requests to the balancer are not held behind it")
        or diag "took @took s (the store hangs for $HOLD s)";

    waitpid $bg, 0;
    open my $in, '<', $bg_file or die "$bg_file: $!";
    my ($code, $took, $status) = split ' ', scalar <$in>;
    close $in;
    ok($code == 200 && $status eq 'unknown',
       "$kind: the hanging request is served when the store gives up (hashed: unknown)")
        or diag "$code $status";
    ok($took >= $HOLD - 1 && $took < $HOLD + 5,
       "$kind: and it did wait for the store (${took}s): the test saw a real hang");
    my @aff = LearnHarness::error_log($fe) =~ /AFF0091/g;
    is(scalar @aff, 1, "$kind: the failure is logged once (AFF0091)");
    LearnHarness::stop($fe);
}

# ---- a real memcached: one lookup per value, not one before the finder and
# one in it ------------------------------------------------------------------
SKIP: {
    skip 'memcached is not installed (tools/setup installs it)', 1
        unless LearnHarness::have_memcached();
    my $store = LearnHarness::start_store('memcache', "$top/memcached");
    # no cache of store answers (AffinityStoreCacheTime, t/learn_cache.t):
    # every lookup is counted
    my $fe = LearnHarness::frontend(module => $module, dir => "$top/count",
                                    mpm => 'event', store => $store->{spec},
                                    extra => ['AffinityStoreCacheTime 0']);
    push @fes, $fe;
    LearnHarness::start($fe) or diag $LearnHarness::LAST_ERROR;
    my $gets = sub {
        my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$store->{port}",
                                      Timeout => 5) or return -1;
        print $s "stats\r\n";
        my $n = -1;
        while (my $l = <$s>) {
            $n = $1 if $l =~ /^STAT cmd_get (\d+)/;
            last if $l =~ /^END/;
        }
        return $n;
    };
    my $v = "count-$RUN";
    LearnHarness::learn_session($fe, $v);
    my $before = $gets->();
    get($fe, '/app/hello.txt', Cookie => "SID=$v") for 1 .. 10;
    get($fe, '/app/hello.txt', Cookie => "SID=a$v; SID=b$v") for 1 .. 10;
    my $n = $gets->() - $before;
    LearnHarness::stop($fe);
    LearnHarness::stop_store($store);
    # a value with no entry is looked up twice: under its key and under
    # the key 0.1.0 wrote (docs/modes.md, upgrading from 0.1.0)
    is($n, 10 + 10 * 2 * 2, '10 requests with a learned value and 10 with two '
       . 'unlearned ones: 50 store lookups (10, and 2 keys for each of 20 misses)');
}
