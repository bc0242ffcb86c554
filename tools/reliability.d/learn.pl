#!/usr/bin/perl
# tools/reliability.d/learn.pl MODULE DIR QUICK: learn mode's reliability
# scenarios on private front ends and stores (t/lib/LearnHarness.pm), all on
# 127.0.0.1.  Prints one JSON line per scenario, as driver.py does:
#   learn-store-kill-memcache, learn-store-kill-redis: the store killed
#       under load and restarted: no 5xx, and sessions learned after it is
#       back stick again
#   learn-store-restart-memcache, learn-store-restart-redis: two front ends
#       on one store, A prefork and B event, both under load; the store
#       stopped for 1 s and started again; then every 0.1 s a new session
#       learned through A is checked through B and one learned through B
#       through A: every session learned 1 s or more after the store's return
#       must route to its member (valid) through the other front end
#   learn-evict: 100,000 distinct sessions (20,000 with --quick), each issued
#       by its member (X-Set1), through a
#       small shmcb (256 KiB): old entries evicted, recent ones kept, no
#       error, the children's RSS flat
#   learn-hostile: hostile SID values in Cookie and Set-Cookie
#   learn-secret: LogLevel affinity:trace8 (and the socache providers and
#       mod_proxy_balancer at trace8), every log and (Redis) every key in
#       the store searched for the session values: none found
use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../../t/lib";
use LearnHarness;
use JSON::PP;
use POSIX ();
use Time::HiRes qw(time sleep);

# ONLY: a regex of scenario names to run (tools/reliability store-restart)
my ($module, $dir, $quick, $only) = @ARGV;
$quick //= 0;
sub wanted { my ($name) = @_; return !defined $only || $name =~ /$only/ }
my @out;
my %pids;
# every store started, stopped on any way out (stop_store is idempotent):
# a front end that does not start must not leave its store running
my @stores;
END {
    LearnHarness::stop($_) for values %pids;
    LearnHarness::stop_store($_) for @stores;
}

sub result {
    my ($name, $requests, $failures, $notes, @problems) = @_;
    print JSON::PP->new->canonical->encode({ scenario => $name, requests => $requests,
        failures => $failures, moved => 0, notes => $notes, problems => \@problems,
        ok => @problems ? JSON::PP::false : JSON::PP::true }), "\n";
}

sub frontend {
    my ($name, %o) = @_;
    my $fe = LearnHarness::frontend(dir => "$dir/$name", module => $module, %o);
    LearnHarness::start($fe) or do {
        result($name, 0, 0, '', "did not start: $LearnHarness::LAST_ERROR");
        return undef;
    };
    $pids{$name} = $fe;
    return $fe;
}

sub children_rss {
    my ($fe) = @_;
    my $ppid = LearnHarness::pid_of($fe) or return 0;
    my $kb = 0;
    for my $p (split ' ', `ps --ppid $ppid -o pid=`) {
        open my $fh, '<', "/proc/$p/status" or next;
        while (<$fh>) { $kb += $1 if /^VmRSS:\s+(\d+)/ }
    }
    return $kb;
}

# wrk with a Lua script that sends a new SID value per request (n..)
sub wrk_distinct {
    my ($fe, $tag, $seconds, $conns) = @_;
    my $lua = "$dir/$tag.lua";
    open my $fh, '>', $lua or die;
    print $fh <<"EOF";
local n = 0
local id = tostring({}):match("0x(%x+)") or "0"
request = function()
  n = n + 1
  local v = "SID=$tag-" .. id .. "-" .. n
  -- the member issues it (X-Set1 comes back as Set-Cookie): only what a
  -- member issued is stored, a value a client made up is not
  return wrk.format(nil, nil, { ["Cookie"] = v, ["X-Set1"] = v .. "; Path=/" })
end
EOF
    close $fh;
    my $url = LearnHarness::url($fe, '/app/hello.txt');
    my $out = `wrk -t2 -c$conns -d${seconds}s --timeout 5s -s $lua $url 2>&1`;
    my ($req) = $out =~ /(\d+) requests in/;
    my ($non2xx) = $out =~ /Non-2xx or 3xx responses: (\d+)/;
    return ($req // 0, $non2xx // 0, $out);
}

# ---- the store killed under load ---------------------------------------------
for my $kind (grep { $_ eq 'memcache' ? LearnHarness::have_memcached() : LearnHarness::have_redis() }
              qw(memcache redis)) {
    my $name = "learn-store-kill-$kind";
    next unless wanted($name);
    my $store = LearnHarness::start_store($kind, "$dir/$kind-kill-daemon");
    push @stores, $store;
    my $fe = frontend($name, store => $store->{spec}) or next;
    my @values = map { "k$_-$$" } 1 .. 50;
    LearnHarness::learn_session($fe, $_) for @values;
    my $secs = $quick ? 6 : 15;
    my $workers = 4;
    my @kids;
    for my $w (1 .. $workers) {
        my $pid = fork // die;
        if (!$pid) {
            my ($n, $bad) = (0, 0);
            my $end = time + $secs;
            while (time < $end) {
                my $r = LearnHarness::get($fe, '/app/hello.txt', Cookie => "SID=$values[($n++ * $w) % @values]");
                $bad++ if $r->code >= 500 || $r->code == 0;
            }
            open my $o, '>', "$dir/$name.$w" or POSIX::_exit(1);
            print $o "$n $bad\n";
            close $o;
            POSIX::_exit(0);
        }
        push @kids, $pid;
    }
    sleep $secs / 4;
    LearnHarness::stop_store($store);
    sleep $secs / 4;
    LearnHarness::restart_store($store);
    waitpid $_, 0 for @kids;
    my ($n, $bad) = (0, 0);
    for my $w (1 .. $workers) {
        open my $i, '<', "$dir/$name.$w" or next;
        my ($a, $b) = split ' ', scalar <$i>;
        $n += $a;
        $bad += $b;
    }
    my ($stuck, $t0) = (0, time);
    my $i = 0;
    while (!$stuck && time - $t0 < 30) {
        my $v = "after" . $i++ . "-$$";
        my $m = LearnHarness::learn_session($fe, $v);
        $stuck = !grep { LearnHarness::backend($_) ne $m || LearnHarness::status($_) ne 'valid' }
                 map { LearnHarness::get($fe, '/app/hello.txt', Cookie => "SID=$v") } 1 .. 3;
        sleep 0.3 unless $stuck;
    }
    my $log = LearnHarness::error_log($fe);
    my $aff = () = $log =~ /AFF0091/g;
    my @p;
    push @p, "$bad 5xx" if $bad;
    push @p, 'learning did not resume within 30 s' unless $stuck;
    push @p, "AFF0091 logged $aff times" if $aff != 1;
    result($name, $n, $bad, sprintf('%s killed %.0f s into %d s of load, restarted %.0f s later; learning resumed %.1f s after; AFF0091 once',
                                    $kind, $secs / 4, $secs, $secs / 4, time - $t0), @p);
    LearnHarness::stop($fe);
    delete $pids{$name};
    LearnHarness::stop_store($store);
}

# ---- the store restarted: two front ends, new sessions right after ----------
for my $kind (grep { $_ eq 'memcache' ? LearnHarness::have_memcached() : LearnHarness::have_redis() }
              qw(memcache redis)) {
    my $name = "learn-store-restart-$kind";
    next unless wanted($name);
    my $store = LearnHarness::start_store($kind, "$dir/$kind-restart-daemon");
    push @stores, $store;
    my $fa = frontend("$name-a", store => $store->{spec}, mpm => 'prefork') or next;
    my $fb = frontend("$name-b", store => $store->{spec}, mpm => 'event') or next;
    my %fe = (A => $fa, B => $fb);
    # load on both: lookups of known sessions, so that every child holds
    # pooled connections to the store when it goes
    my @values = map { "rs$_-$$" } 1 .. 40;
    LearnHarness::learn_session($fa, $_) for @values;
    my $probe = $quick ? 3 : 8;
    my $secs = 2 + 1 + $probe + 1;
    my @kids;
    for my $w (1 .. 4) {
        my $pid = fork // die;
        if (!$pid) {
            my $fe = $w % 2 ? $fa : $fb;
            my ($n, $bad) = (0, 0);
            my $end = time + $secs;
            while (time < $end) {
                my $r = LearnHarness::get($fe, '/app/hello.txt', Cookie => "SID=$values[($n++ * $w) % @values]");
                $bad++ if $r->code >= 500 || $r->code == 0;
                sleep 0.01;         # CPU left for the probes
            }
            open my $o, '>', "$dir/$name.$w" or POSIX::_exit(1);
            print $o "$n $bad\n";
            close $o;
            POSIX::_exit(0);
        }
        push @kids, $pid;
    }
    sleep 2;
    LearnHarness::stop_store($store);
    sleep 1;
    LearnHarness::restart_store($store);
    my $back = time;
    # every 0.25 s: learned through one front end, checked through the other
    my (@trace, $last_bad);
    my $i = 0;
    while (time - $back < $probe) {
        for my $pair (['A', 'B'], ['B', 'A']) {
            my ($from, $to) = @$pair;
            my $v = "new" . $i++ . "-$$";
            my $t = time - $back;
            my $m = LearnHarness::learn_session($fe{$from}, $v) // '';
            my $r = LearnHarness::get($fe{$to}, '/app/hello.txt', Cookie => "SID=$v");
            my $ok = $m ne '' && LearnHarness::backend($r) eq $m && LearnHarness::status($r) eq 'valid';
            push @trace, sprintf('%s%.2f%s', $from, $t, $ok ? '' : '!');
            $last_bad = $t if !$ok;
        }
        sleep 0.1;
    }
    waitpid $_, 0 for @kids;
    my ($n, $bad) = (0, 0);
    for my $w (1 .. 4) {
        open my $in, '<', "$dir/$name.$w" or next;
        my ($x, $y) = split ' ', scalar <$in>;
        $n += $x;
        $bad += $y;
    }
    my $late = grep { /^[AB](\d+\.\d+)!$/ && $1 >= 1.0 } @trace;
    my $fails = grep { /!$/ } @trace;
    my @p;
    push @p, "$bad 5xx" if $bad;
    push @p, "$late of the sessions learned 1 s or more after the store's return route differently on the other front end" if $late;
    result($name, $n, $bad, sprintf('%s stopped for 1 s under load; %d of %d new sessions (A prefork -> B event and back, every 0.1 s for %d s) failed, the last learned %s after its return; trace (s after the return, ! = failed): %s',
                                    $kind, $fails, scalar @trace, $probe,
                                    defined $last_bad ? sprintf('%.2f s', $last_bad) : 'none',
                                    join(' ', @trace)), @p);
    for my $f ($fa, $fb) {
        LearnHarness::stop($f);
    }
    delete @pids{"$name-a", "$name-b"};
    LearnHarness::stop_store($store);
}

# ---- many sessions through a small shmcb --------------------------------------
if (wanted('learn-evict')) {
    my $name = 'learn-evict';
    my $fe = frontend($name, store => "shmcb:$dir/evict-shm(262144)");
    if ($fe) {
        my $total = $quick ? 20000 : 100000;
        my $first = "first-$$";
        LearnHarness::learn_session($fe, $first);
        # RSS once a third of the sessions went through (children and
        # their pools warm), and at the end: flat means no growth per session
        my ($req, $bad, $n, $rss0) = (0, 0, 0, 0);
        my $t0 = time;
        while ($req < $total && time - $t0 < 120) {
            my ($r, $b) = wrk_distinct($fe, "ev$n", 2, 8);
            $n++;
            $req += $r;
            $bad += $b;
            $rss0 ||= children_rss($fe) if $req >= $total / 3;
        }
        my $rss1 = children_rss($fe);
        my $recent = "recent-$$";
        my $m = LearnHarness::learn_session($fe, $recent);
        my $rr = LearnHarness::get($fe, '/app/hello.txt', Cookie => "SID=$recent");
        my $old = LearnHarness::status(LearnHarness::get($fe, '/app/hello.txt', Cookie => "SID=$first"));
        my $log = LearnHarness::error_log($fe);
        my @p;
        push @p, "only $req distinct sessions" if $req < $total;
        push @p, "$bad non-2xx" if $bad;
        push @p, "the first session was not evicted ($old)" if $old ne 'unknown';
        push @p, 'a recent session was not kept' unless LearnHarness::status($rr) eq 'valid' && LearnHarness::backend($rr) eq $m;
        push @p, sprintf('RSS grew from %d to %d KiB', $rss0, $rss1) if $rss1 > $rss0 * 1.10 + 1024;
        push @p, 'crash in the error log' if $log =~ /Segmentation|exit signal/;
        result($name, $req, $bad, sprintf('%d distinct sessions through a 256 KiB shmcb: oldest evicted, newest kept; children RSS %d KiB at a third, %d KiB at the end',
                                          $req, $rss0, $rss1), @p);
        LearnHarness::stop($fe);
        delete $pids{$name};
    }
}

# ---- hostile values -------------------------------------------------------------
if (wanted('learn-hostile')) {
    my $name = 'learn-hostile';
    my $fe = frontend($name);
    if ($fe) {
        my @cookies = ('SID=' . ('~' x 3000), 'SID="', 'SID=""', 'SID=' . ("\x80" x 50),
                       join('; ', map { "SID=h$_" } 1 .. 300), 'SID=' . ('x' x 7000),
                       'SID=;SID=;SID=', 'SID', '=SID=1', 'SID=a' . ('%00' x 100),
                       'SID=' . ('=' x 500), ('SID=v;' x 1000));
        my @sets = ('SID=' . ('z' x 4000), 'SID=; Max-Age=-1', 'SID=x; Max-Age=abc; Expires=garbage',
                    'SID="unterminated', 'SID=' . ("\x80" x 20), '=novalue', 'SID');
        my ($n, $bad) = (0, 0);
        for my $c (@cookies) {
            my $r = LearnHarness::get($fe, '/app/hello.txt', Cookie => $c);
            $n++;
            $bad++ if $r->code != 200;
        }
        for my $s (@sets) {
            my $r = LearnHarness::get($fe, '/app/hello.txt', 'X-Set1' => $s, Cookie => 'SID=h1');
            $n++;
            $bad++ if $r->code != 200;
        }
        my $alive = LearnHarness::get($fe, '/app/hello.txt')->code == 200;
        my $log = LearnHarness::error_log($fe);
        my @p;
        push @p, "$bad requests not answered 200" if $bad;
        push @p, 'front end no longer answers' unless $alive;
        push @p, 'crash in the error log' if $log =~ /Segmentation|exit signal/;
        result($name, $n, $bad, scalar(@cookies) . ' hostile Cookie and ' . scalar(@sets) . ' hostile Set-Cookie values: all served', @p);
        LearnHarness::stop($fe);
        delete $pids{$name};
    }
}

# ---- the session values never show: logs at trace8, Redis keys ------------------
if (wanted('learn-secret')) {
    my $name = 'learn-secret';
    my $redis = LearnHarness::have_redis() ? LearnHarness::start_store('redis', "$dir/secret-daemon") : undef;
    push @stores, $redis if $redis;
    # the module and the store providers at trace8 (httpd's own http:trace4
    # dumps every request and response header, whoever sets them)
    my $fe = frontend($name, loglevel => 'warn affinity:trace8 proxy_balancer:trace8 socache_shmcb:trace8 socache_memcache:trace8 socache_redis:trace8',
                      ($redis ? (store => $redis->{spec}) : ()));
    if ($fe) {
        my @secrets = map { sprintf 'S3cr3t%04dXq%d', $_, $$ } 1 .. 20;
        my $n = 0;
        for my $s (@secrets) {
            LearnHarness::learn_session($fe, $s);
            LearnHarness::get($fe, '/app/hello.txt', Cookie => "SID=$s") for 1 .. 2;
            LearnHarness::get($fe, '/app/hello.txt', Cookie => "SID=$s", 'X-Set1' => 'SID=; Max-Age=0');
            $n += 4;
        }
        LearnHarness::edit($fe, 'm1', w_status_D => 1);
        LearnHarness::get($fe, '/app/hello.txt', Cookie => "SID=$_") for @secrets;
        LearnHarness::edit($fe, 'm1', w_status_D => 0);
        LearnHarness::stop($fe);
        delete $pids{$name};
        # every log the front end wrote (the access log is the operator's
        # format: ours leaves out the Cookie header)
        my @found;
        for my $f (glob "$fe->{dir}/logs/*_log") {
            open my $fh, '<', $f or next;
            local $/;
            my $text = <$fh>;
            push @found, $f if grep { index($text, $_) >= 0 } @secrets;
        }
        my $trace_lines = () = LearnHarness::error_log($fe) =~ /affinity:trace/g;
        my @keys;
        if ($redis) {
            @keys = grep { length } split /\n/, `redis-cli -h 127.0.0.1 -p $redis->{port} --scan 2>&1`;
            LearnHarness::stop_store($redis);
        }
        my @badkeys = grep { !/^affinity:[0-9a-f]{40}$/ } @keys;
        my @leaky = grep { my $k = $_; grep { index($k, $_) >= 0 } @secrets } @keys;
        my @p;
        push @p, 'a session value appears in ' . join(', ', @found) if @found;
        push @p, 'no trace lines: LogLevel trace8 not in force' unless $trace_lines;
        push @p, 'a session value appears in a Redis key' if @leaky;
        push @p, "unexpected Redis keys: @badkeys[0 .. ($#badkeys < 2 ? $#badkeys : 2)]" if @badkeys;
        result($name, $n, 0, sprintf('LogLevel trace8 (%d trace lines): no session value in any log%s',
                                     $trace_lines, $redis ? sprintf('; %d Redis keys (redis-cli --scan), all affinity:HMAC', scalar @keys) : ''), @p);
    }
}
