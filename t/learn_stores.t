# Learn mode on private front ends (t/lib/LearnHarness.pm), outside the
# suite's own server:
#   - shmcb (default store): sessions survive a graceful restart (SIGUSR1),
#     are lost on a full stop; a store provider that is not loaded stops
#     startup naming the LoadModule line
#   - memcached and redis-server, started here on free 127.0.0.1 ports: the
#     learn rules against each, sessions survive graceful and full restarts,
#     two front ends (one prefork, one event) on one store agree on 200
#     sessions, and the store killed under load: no 5xx, and every session
#     learned from 1 s after it is back sticks
# Runs in the suite's event pass only (it starts its own MPMs).
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use File::Spec;
use File::Path qw(remove_tree);
use POSIX ();
use Time::HiRes qw(sleep time);
use lib 't/lib';
use LearnHarness;

my $mpm = Apache::Test::config()->{server}{mpm} // '';
my @stores = ((LearnHarness::have_memcached() ? 'memcache' : ()),
              (LearnHarness::have_redis() ? 'redis' : ()));
my $missing = @stores < 2;
# LEARN_STORES=REGEX: only those stores (while developing)
@stores = grep { $_ =~ /$ENV{LEARN_STORES}/ } @stores if $ENV{LEARN_STORES};
if ($mpm ne 'event') {
    plan skip_all => 'runs its own prefork and event front ends: once, in the event pass';
}
plan tests => 13 + 18 * @stores;
diag 'memcached or redis-server is not installed (tools/setup installs them): '
   . 'their tests are skipped' if $missing;

my $module = File::Spec->rel2abs(Apache::Test::vars('serverroot') . '/../.libs/mod_affinity.so');
my $top = File::Spec->rel2abs(Apache::Test::vars('t_logs') . '/learn-stores');
remove_tree($top);
my $RUN = "$$-" . int(rand(1e6));
my @started;                                # front ends to stop at the end
my @daemons;
END {
    LearnHarness::stop($_) for @started;
    LearnHarness::stop_store($_) for @daemons;
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

# n sessions learned through $fe: { value => member }
sub learn_many {
    my ($fe, $n, $tag) = @_;
    my %s;
    for my $i (1 .. $n) {
        my $v = "$tag$i-$RUN";
        $s{$v} = LearnHarness::learn_session($fe, $v);
    }
    return \%s;
}

# how many of the sessions route to their member with status valid
sub still_there {
    my ($fe, $s) = @_;
    my $ok = 0;
    for my $v (keys %$s) {
        my $r = get($fe, '/app/hello.txt', Cookie => "SID=$v");
        $ok++ if backend($r) eq $s->{$v} && st($r) eq 'valid';
    }
    return $ok;
}

# ---- shmcb: graceful restart keeps sessions, a full stop loses them -----------
{
    my $fe = fe(dir => "$top/shmcb", mpm => 'prefork');
    ok(LearnHarness::start($fe), 'a front end with the default store starts')
        or diag $LearnHarness::LAST_ERROR;
    my $s = learn_many($fe, 20, 'g');
    is(still_there($fe, $s), 20, '20 sessions learned (shmcb)');
    ok(LearnHarness::graceful($fe), 'graceful restart (SIGUSR1)');
    is(still_there($fe, $s), 20, 'all 20 still learned after the graceful restart');
    ok(LearnHarness::graceful($fe), 'and a second one');
    is(still_there($fe, $s), 20, 'all 20 still learned');
    LearnHarness::stop($fe);
    LearnHarness::start($fe);
    is(still_there($fe, $s), 0, 'a full stop forgets them (shared memory dies with the parent)');
    LearnHarness::stop($fe);

    my $bad = fe(dir => "$top/noprov", store => 'redis:127.0.0.1:1',
                 skip_modules => ['socache_redis']);
    my ($rc, $out) = LearnHarness::httpd_run($bad, '-t');
    isnt($rc, 0, 'AffinityStore redis without mod_socache_redis: refused');
    like($out, qr/AFF0090: .*provider "redis" is not loaded.*LoadModule socache_redis_module .*a2enmod socache_redis/,
         'the message names the LoadModule line and a2enmod');

    for my $case (['AffinityStoreTimeout 0', qr/AffinityStoreTimeout: "0" is not a number of seconds from 1 to 31536000/],
                  ['<VirtualHost 127.0.0.1:1>\nAffinityStore shmcb\n</VirtualHost>', qr/AffinityStore cannot occur within <VirtualHost> section/]) {
        my ($line, $re) = @$case;
        $line =~ s/\\n/\n/g;
        my $c = fe(dir => "$top/bad" . length($line), extra => [split /\n/, $line]);
        my ($rc2, $out2) = LearnHarness::httpd_run($c, '-t');
        isnt($rc2, 0, "refused at startup: $case->[0]");
        like($out2, $re, 'with a message naming the directive');
    }
}

# ---- memcached and redis ---------------------------------------------------------
for my $kind (@stores) {
    my $store = LearnHarness::start_store($kind, "$top/$kind-daemon");
    push @daemons, $store;
    my $fe = fe(dir => "$top/$kind-a", mpm => 'event', store => $store->{spec});
    ok(LearnHarness::start($fe), "$kind: a front end starts") or diag $LearnHarness::LAST_ERROR;

    # the rules
    my $v = "a-$RUN";
    my $m = LearnHarness::learn_session($fe, $v, 'm2');
    my @r = map { get($fe, '/app/hello.txt', Cookie => "SID=$v") } 1 .. 10;
    ok(!grep({ backend($_) ne 'm2' || st($_) ne 'valid' } @r), "$kind: a learned session sticks (valid)");
    my $u = "u-$RUN";
    @r = map { get($fe, '/app/hello.txt', Cookie => "SID=$u") } 1 .. 5;
    ok(!grep({ st($_) ne 'unknown' || backend($_) ne backend($r[0]) } @r),
       "$kind: an unknown value is hashed, never stored");
    get($fe, '/app/hello.txt', Cookie => "SID=$v", 'X-Set1' => 'SID=; Max-Age=0');
    is(st(get($fe, '/app/hello.txt', Cookie => "SID=$v")), 'unknown', "$kind: a deletion removes the entry");

    my $mv = "mv-$RUN";
    LearnHarness::learn_session($fe, $mv, 'm1');
    LearnHarness::edit($fe, 'm1', w_status_D => 1);
    my $r = get($fe, '/app/hello.txt', Cookie => "SID=$mv");
    my $to = backend($r);
    ok(st($r) eq 'down' && $to ne 'm1', "$kind: member disabled: the session moves");
    LearnHarness::edit($fe, 'm1', w_status_D => 0);
    $r = get($fe, '/app/hello.txt', Cookie => "SID=$mv");
    ok(backend($r) eq $to && st($r) eq 'valid', "$kind: and its entry was updated to the new member");

    # restarts
    my $s = learn_many($fe, 20, "r$kind");
    ok(LearnHarness::graceful($fe), "$kind: graceful restart");
    is(still_there($fe, $s), 20, "$kind: 20 sessions survive it");
    LearnHarness::stop($fe);
    ok(LearnHarness::start($fe), "$kind: full stop and start");
    is(still_there($fe, $s), 20, "$kind: 20 sessions survive that too");

    # idle timeout on the store
    my $short = fe(dir => "$top/$kind-short", store => $store->{spec}, timeout => 2);
    LearnHarness::start($short) or diag $LearnHarness::LAST_ERROR;
    my $t = "t-$RUN";
    LearnHarness::learn_session($short, $t);
    my $first = st(get($short, '/app/hello.txt', Cookie => "SID=$t"));
    sleep 3.2;
    my $later = st(get($short, '/app/hello.txt', Cookie => "SID=$t"));
    ok($first eq 'valid' && $later eq 'unknown', "$kind: AffinityStoreTimeout 2: forgotten after 3 s idle")
        or diag "$first then $later";
    LearnHarness::stop($short);

    # two front ends, one prefork and one event, on one store
    my $b = fe(dir => "$top/$kind-b", mpm => 'prefork', store => $store->{spec});
    ok(LearnHarness::start($b), "$kind: a second front end (prefork) on the same store")
        or diag $LearnHarness::LAST_ERROR;
    my $many = learn_many($fe, 200, "two$kind");
    is(still_there($b, $many), 200, "$kind: 200 sessions learned through the event front end route identically through the prefork one");
    my $back = learn_many($b, 50, "back$kind");
    is(still_there($fe, $back), 50, "$kind: and 50 learned through the prefork one, through the event one");
    LearnHarness::stop($b);

    # the store killed under load, then restarted
    my @sessions = keys %$many;
    my $pid = fork // die;
    if (!$pid) {
        my ($n, $bad) = (0, 0);
        my $end = time + 5;
        while (time < $end) {
            my $x = $sessions[$n++ % @sessions];
            my $rr = get($fe, '/app/hello.txt', Cookie => "SID=$x");
            $bad++ if $rr->code >= 500;
        }
        open my $o, '>', "$top/$kind-load" or die;
        print $o "$n $bad\n";
        close $o;
        POSIX::_exit(0);            # not exit: END would stop everything
    }
    sleep 1;
    LearnHarness::stop_store($store);
    my $t0 = time;
    my $dr = get($fe, '/app/hello.txt', Cookie => "SID=$sessions[0]");
    my $took = time - $t0;
    sleep 1.5;
    LearnHarness::restart_store($store);
    # learning resumes by itself, within 1 s: each child replaces a client
    # whose pooled connections the old store closed (APR alone would call
    # the server dead and answer "not found" for 5 s or more)
    my ($late, $tries, $tb) = (0, 0, time);     # from the store's return,
    # while the load goes on
    my $i = 0;
    while (time - $tb < 3.5) {
        my $x = "after$i-$kind-$RUN";
        $i++;
        my $t = time - $tb;
        my $mm = LearnHarness::learn_session($fe, $x) // '';
        my @ok = grep { backend($_) eq $mm && st($_) eq 'valid' }
                 map { get($fe, '/app/hello.txt', Cookie => "SID=$x") } 1 .. 3;
        if ($t >= 1) {
            $tries++;
            $late++ if @ok != 3;
        }
        sleep 0.2;
    }
    waitpid $pid, 0;
    open my $in, '<', "$top/$kind-load" or die;
    my ($n, $bad) = split ' ', scalar <$in>;
    is($bad, 0, "$kind: store killed under load ($n requests): no 5xx");
    ok($dr->code == 200 && $took < 2, "$kind: with the store down a request is served at once")
        or diag sprintf('%d in %.2fs', $dr->code, $took);
    my $log = LearnHarness::error_log($fe);
    my @aff = $log =~ /AFF0091/g;
    my @noise = $log =~ /\[socache_\w+:/g;
    ok(@aff == 1 && !@noise, "$kind: the failure logged once (AFF0091), not per request")
        or diag scalar(@aff) . ' AFF0091 lines, ' . scalar(@noise) . " lines of the provider's own";
    system("rm -rf /tmp/lh/keep; cp -r $top /tmp/lh/keep; chmod -R a+rwX /tmp/lh/keep") if $ENV{LEARN_KEEP};
    ok($tries && !$late, "$kind: every session learned 1 s or more after the store came back sticks")
        or diag "$late of $tries failed; ",
                join '', grep { defined } (grep { /AFF|socache/ } split /^/, LearnHarness::error_log($fe))[-15 .. -1];
    LearnHarness::stop($fe);
    LearnHarness::stop_store($store);
}
