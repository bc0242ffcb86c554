# Learn mode with a real application, with each store: three PHP built-in
# servers (php -S, t/php/counter.php, the page t/php_session.t uses for
# prefix mode), each with its own session.save_path, behind a private front
# end (t/lib/LearnHarness.pm) with AffinityMode learn PHPSESSID and
# AffinityStore shmcb, memcache, then redis.  50 clients, each with its own
# cookie jar, make 20 requests each (5 client processes in parallel): every
# counter must count 1..20 on one member, and the PHPSESSID the client holds
# is exactly the one PHP issued (learn mode never touches the cookie).
# Runs in the suite's event pass only (the front end has its own MPM).
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use File::Path qw(make_path remove_tree);
use File::Spec;
use LWP::UserAgent;
use POSIX ();
use Time::HiRes qw(time sleep);
use lib 't/lib';
use LearnHarness;

my $php = `sh -c 'command -v php' 2>/dev/null`;
chomp $php;
my $have = $php && `$php -m 2>/dev/null` =~ /^session$/m;
my $mpm = Apache::Test::config()->{server}{mpm} // '';
my @stores = ('shmcb', (LearnHarness::have_memcached() ? 'memcache' : ()),
              (LearnHarness::have_redis() ? 'redis' : ()));

if ($mpm ne "event") {
    plan skip_all => "runs its own front end: once, in the event pass (mpm: $mpm)";
}
plan tests => 3 * @stores, need { 'php with sessions (Debian php-cli; tools/setup installs it)' => $have };

my $CLIENTS = 50;
my $WORKERS = 5;
my $module = File::Spec->rel2abs(Apache::Test::vars('serverroot') . '/../.libs/mod_affinity.so');
my $docroot = File::Spec->rel2abs(Apache::Test::vars('serverroot') . '/php');
my $work = File::Spec->rel2abs(Apache::Test::vars('t_logs') . '/php-learn');
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

# $n requests per client, $WORKERS processes in parallel; each line:
# client counter member jar issued(0/1)
sub drive {
    my ($url, $clients, $n) = @_;
    my @slices;
    push @{ $slices[$_ % $WORKERS] }, $_ for 0 .. $#$clients;
    my %out;
    for my $w (0 .. $#slices) {
        my $file = "$work/worker$w.out";
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            my $ua = LWP::UserAgent->new(keep_alive => 0, timeout => 10);
            open my $fh, '>', $file or POSIX::_exit(1);
            for my $c (@{ $slices[$w] }) {
                my $jar = $clients->[$c]{jar};
                for (1 .. $n) {
                    my $res = $ua->get($url, defined $jar ? (Cookie => "PHPSESSID=$jar") : ());
                    my $issued = $res->header('X-Session') // '-';
                    for my $sc ($res->header('Set-Cookie')) {
                        $jar = $1 if $sc =~ /^PHPSESSID=([^;]*)/;
                    }
                    printf $fh "%d %s %s %s %d\n", $c,
                        $res->code == 200 ? ($res->header('X-Counter') // 0) : 0,
                        $res->header('X-Member') // '-', $jar // '-',
                        (defined $jar && $jar eq $issued) ? 1 : 0;
                }
            }
            close $fh;
            POSIX::_exit(0);
        }
        $out{$pid} = $file;
    }
    for my $pid (keys %out) {
        waitpid($pid, 0);
        open my $fh, '<', $out{$pid} or die "$out{$pid}: $!";
        while (<$fh>) {
            my ($c, $counter, $member, $jar, $same) = split;
            push @{ $clients->[$c]{hist} }, [$counter, $member, $same];
            $clients->[$c]{jar} = $jar eq '-' ? undef : $jar;
        }
    }
}

for my $kind (@stores) {
    my $store;
    if ($kind ne 'shmcb') {
        $store = LearnHarness::start_store($kind, "$work/$kind-daemon");
        push @daemons, $store;
    }
    my %port = map { ("php$_" => LearnHarness::free_port()) } 1 .. 3;
    my $fe = LearnHarness::frontend(dir => "$work/fe-$kind", module => $module,
                                    external => \%port, cookie => 'PHPSESSID',
                                    ($store ? (store => $store->{spec}) : ()));
    push @fes, $fe;
    LearnHarness::start($fe) or die "front end: $LearnHarness::LAST_ERROR";
    start_php($kind, \%port);
    my $t0 = time;
    my @clients = map { { jar => undef, hist => [] } } 1 .. $CLIENTS;
    drive(LearnHarness::url($fe, '/app/counter.php'), \@clients, 20);
    my @bad = grep { join(',', map { $_->[0] } @{ $_->{hist} }) ne join(',', 1 .. 20) } @clients;
    ok(!@bad, "$kind: $CLIENTS clients x 20 requests, every counter counts 1..20 (no reset)")
        or diag 'e.g. ' . join(' ', map { "$_->[0]\@$_->[1]" } @{ $bad[0]{hist} });
    ok(!grep({ my %m = map { $_->[1] => 1 } @{ $_->{hist} }; keys(%m) != 1 } @clients),
       "$kind: each client on one member");
    ok(!grep({ grep { !$_->[2] } @{ $_->{hist} } } @clients),
       "$kind: every cookie the client holds is PHP's own session ID, untouched");
    diag sprintf('%s: %d requests in %.1f s', $kind, $CLIENTS * 20, time - $t0);
    stop_php();
    LearnHarness::stop($fe);
    LearnHarness::stop_store($store) if $store;
}
