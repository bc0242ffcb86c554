# A store that comes back empty (issue 24): learn mode's local tier keeps
# the sessions a front end learned through a Redis restart, with and
# without persistence.  Three PHP built-in servers (php -S, t/php/counter.php,
# each with its own session.save_path and strict sessions: a request on the
# wrong member starts a new session at 1) behind a private event front end
# A on Redis, and a prefork front end B on the same Redis.  30 sessions are
# learned through A (3 requests each); Redis is killed; every session makes
# 2 requests through A while it is down; Redis starts again (empty without
# persistence, everything kept with an fsync'd append-only file); every
# session makes 3 more requests through A: each counter counts 1..8 on one
# member.  Then through B each session still reaches its member (the
# entries A wrote back to the empty Redis).
# Runs in the suite's event pass only (the front ends have their own MPMs).
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use File::Path qw(make_path remove_tree);
use File::Spec;
use LWP::UserAgent;
use POSIX ();
use Time::HiRes qw(sleep);
use lib 't/lib';
use LearnHarness;

my $php = `sh -c 'command -v php' 2>/dev/null`;
chomp $php;
my $have = $php && `$php -m 2>/dev/null` =~ /^session$/m;
my $mpm = Apache::Test::config()->{server}{mpm} // '';
if ($mpm ne 'event') {
    plan skip_all => "runs its own front ends: once, in the event pass (mpm: $mpm)";
}
plan tests => 2 * 5, need { 'php with sessions (Debian php-cli)' => $have,
                            'redis-server' => LearnHarness::have_redis() };

my $N = 30;
my $module = File::Spec->rel2abs(Apache::Test::vars('serverroot') . '/../.libs/mod_affinity.so');
my $docroot = File::Spec->rel2abs(Apache::Test::vars('serverroot') . '/php');
my $work = File::Spec->rel2abs(Apache::Test::vars('t_logs') . '/php-store-restart');
remove_tree($work);
make_path($work);

my (%pgid, @fes, @daemons);
sub stop_php {
    kill 'TERM', -$_ for values %pgid;
    for my $pid (values %pgid) {
        for (1 .. 50) { last if waitpid($pid, POSIX::WNOHANG()) != 0; sleep 0.1 }
        kill 'KILL', -$pid;
        waitpid($pid, 0);
    }
    %pgid = ();
}
END {
    stop_php();
    LearnHarness::stop($_) for @fes;
    LearnHarness::stop_store($_) for @daemons;
}

sub start_php {
    my ($tag, $port) = @_;
    for my $route (sort keys %$port) {
        my $dir = "$work/$tag-$route";
        make_path($dir);
        chmod 0777, $dir;
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            POSIX::setsid();
            open STDOUT, '>>', "$work/$route.log";
            open STDERR, '>&', \*STDOUT;
            $ENV{AFFINITY_TEST_MEMBER} = $route;
            $ENV{PHP_CLI_SERVER_WORKERS} = 2;
            { exec $php, '-d', "session.save_path=$dir", '-d', 'session.use_strict_mode=1',
                '-d', 'session.use_cookies=1', '-d', 'session.use_only_cookies=1',
                '-d', 'session.gc_probability=0',
                '-S', "127.0.0.1:$port->{$route}", '-t', $docroot; }
            POSIX::_exit(127);
        }
        $pgid{$route} = $pid;
    }
    for my $route (keys %$port) {
        LearnHarness::wait_for(15, sub { LearnHarness::port_open($port->{$route}) })
            or die "php -S for $route did not start\n";
    }
}

my $ua = LWP::UserAgent->new(keep_alive => 0, timeout => 10);

# $n requests for each client through $fe; each client's history grows by
# [counter, member]
sub drive {
    my ($fe, $clients, $n) = @_;
    my $url = LearnHarness::url($fe, '/app/counter.php');
    for my $c (@$clients) {
        for (1 .. $n) {
            my $res = $ua->get($url, defined $c->{jar} ? (Cookie => "PHPSESSID=$c->{jar}") : ());
            for my $sc ($res->header('Set-Cookie')) {
                $c->{jar} = $1 if $sc =~ /^PHPSESSID=([^;]*)/;
            }
            push @{ $c->{hist} }, [$res->code == 200 ? ($res->header('X-Counter') // 0) : 0,
                                   $res->header('X-Member') // '-'];
        }
    }
}

# clients whose counters are not 1..n on one member
sub broken {
    my ($clients, $n) = @_;
    return grep {
        my %m = map { $_->[1] => 1 } @{ $_->{hist} };
        join(',', map { $_->[0] } @{ $_->{hist} }) ne join(',', 1 .. $n) || keys(%m) != 1
    } @$clients;
}

sub show { join ' ', map { "$_->[0]\@$_->[1]" } @{ $_[0]{hist} } }

for my $persist (0, 1) {
    my $how = $persist ? 'Redis with persistence' : 'Redis without persistence';
    my $store = LearnHarness::start_store('redis', "$work/redis$persist", undef,
                                          persist => $persist);
    push @daemons, $store;
    my %port = map { ("php$_" => LearnHarness::free_port()) } 1 .. 3;
    my @common = (module => $module, external => \%port, cookie => 'PHPSESSID',
                  store => $store->{spec});
    my $a = LearnHarness::frontend(dir => "$work/a$persist", mpm => 'event', @common);
    my $b = LearnHarness::frontend(dir => "$work/b$persist", mpm => 'prefork', @common);
    push @fes, $a, $b;
    LearnHarness::start($a) or die "front end A: $LearnHarness::LAST_ERROR";
    LearnHarness::start($b) or die "front end B: $LearnHarness::LAST_ERROR";
    start_php("p$persist", \%port);

    my @clients = map { { jar => undef, hist => [] } } 1 .. $N;
    drive($a, \@clients, 3);
    my @bad = broken(\@clients, 3);
    ok(!@bad, "$how: $N PHP sessions learned through front end A (counters 1..3)")
        or diag 'e.g. ' . show($bad[0]);

    LearnHarness::stop_store($store);
    # past the children's cache of store answers (AffinityStoreCacheTime,
    # 500 ms): else a short outage may be answered from it entirely, and
    # neither noticed nor logged
    sleep 0.6;
    drive($a, \@clients, 2);
    @bad = broken(\@clients, 5);
    ok(!@bad, "$how: Redis down: every session keeps its member through A (counters 1..5)")
        or diag scalar(@bad) . " of $N moved, e.g. " . show($bad[0]);

    LearnHarness::restart_store($store);
    sleep 0.3;
    my $keys = `redis-cli -p $store->{port} dbsize 2>/dev/null` // '';
    chomp $keys;
    drive($a, \@clients, 3);
    @bad = broken(\@clients, 8);
    ok(!@bad, "$how: Redis back (" . ($keys eq '' ? '?' : $keys) . " keys at its return): "
              . "every session keeps its member through A (counters 1..8)")
        or diag scalar(@bad) . " of $N moved, e.g. " . show($bad[0]);

    # through B: the entries are in Redis again (written back by A if lost)
    drive($b, \@clients, 1);
    @bad = broken(\@clients, 9);
    ok(!@bad, "$how: and through front end B too (counters 1..9)")
        or diag scalar(@bad) . " of $N moved, e.g. " . show($bad[0]);
    my $log = LearnHarness::error_log($a);
    my @back = $log =~ /AFF0110: /g;
    is(scalar @back, 1, "$how: A logged the store's return once (AFF0110)");
    stop_php();
    LearnHarness::stop($_) for $a, $b;
    LearnHarness::stop_store($store);
}
