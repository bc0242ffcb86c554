# Prefix mode with a real application: three PHP built-in servers
# (php -S, t/php/counter.php), each with its own session.save_path, behind
# balancer://php (AffinityMode prefix PHPSESSID, t/conf/php.conf.in).
#
# For session.use_strict_mode 0 and then 1: 50 clients, each with its own
# cookie jar, make 20 requests each (several clients in parallel): every
# counter must count 1..20 on one member.  Then one member is disabled
# through balancer-manager and every client makes 10 more requests: the
# clients of that member lose their session exactly once (1..10 again) and
# stick to one other member; every other client goes on 21..30.
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use Apache::TestRequest;
use File::Path qw(make_path remove_tree);
use File::Spec;
use IO::Socket::INET;
use LWP::UserAgent;
use POSIX ();
use Time::HiRes qw(time sleep);
use lib 't/lib';
use AffinityTest;

my $php = `sh -c 'command -v php' 2>/dev/null`;
chomp $php;
my $have = $php && `$php -m 2>/dev/null` =~ /^session$/m;

plan tests => 2 * 6, need { 'php with sessions (Debian php-cli; tools/setup installs it)' => $have };

my $CLIENTS = 50;
my $WORKERS = 5;                        # client processes in parallel
my $page = '/php/counter.php';
my $docroot = File::Spec->rel2abs(Apache::Test::vars('serverroot') . '/php');
my $work = Apache::Test::vars('t_logs') . '/php';

# The members, from balancer-manager: route => port.
my %port;
for my $m (@{ bm_members('php') }) {
    my ($p) = $m->{name} =~ /:(\d+)\/?$/;
    $port{ $m->{route} } = $p;
}
my @routes = sort keys %port;

my %pgid;

sub stop_php {
    for my $route (keys %pgid) {
        kill 'TERM', -$pgid{$route};
    }
    for my $route (keys %pgid) {
        for (1 .. 50) {
            last if waitpid($pgid{$route}, POSIX::WNOHANG()) != 0;
            sleep 0.1;
        }
        # the server's workers too, should any outlive it
        kill 'KILL', -$pgid{$route};
        waitpid($pgid{$route}, 0);
    }
    %pgid = ();
}

END { stop_php() }

sub start_php {
    my ($strict) = @_;
    for my $route (@routes) {
        my $dir = "$work/$route-strict$strict";
        remove_tree($dir);
        make_path($dir);
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            POSIX::setsid();
            open STDOUT, '>>', "$work/$route.log";
            open STDERR, '>&', \*STDOUT;
            $ENV{AFFINITY_TEST_MEMBER} = $route;
            $ENV{PHP_CLI_SERVER_WORKERS} = 2;
            exec $php, '-d', "session.save_path=$dir", '-d', "session.use_strict_mode=$strict",
                '-d', 'session.use_cookies=1', '-d', 'session.use_only_cookies=1',
                '-d', 'session.gc_probability=0',
                '-S', "127.0.0.1:$port{$route}", '-t', $docroot;
            exit 127;
        }
        $pgid{$route} = $pid;
    }
    # bounded wait until every member answers
    my $deadline = time + 15;
    for my $route (@routes) {
        until (IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port{$route})) {
            die "php -S for $route did not start on port $port{$route}\n" if time > $deadline;
            sleep 0.05;
        }
    }
}

# Runs $n requests for each client (hash refs: {jar, hist => [[counter, member]]}),
# $WORKERS processes in parallel, each its clients one after another.
sub drive {
    my ($clients, $n) = @_;
    my $url = Apache::TestRequest::resolve_url($page);
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
                    for my $sc ($res->header('Set-Cookie')) {
                        $jar = $1 if $sc =~ /^PHPSESSID=([^;]*)/;
                    }
                    printf $fh "%d %s %s %s\n", $c, $res->code == 200 ? ($res->header('X-Counter') // 0) : 0,
                        $res->header('X-Member') // '-', $jar // '-';
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
            my ($c, $counter, $member, $jar) = split;
            push @{ $clients->[$c]{hist} }, [$counter, $member];
            $clients->[$c]{jar} = $jar eq '-' ? undef : $jar;
        }
    }
}

# The members a client's requests went to.
sub members_of {
    my %m = map { $_->[1] => 1 } @_;
    return sort keys %m;
}

sub n_members { my @m = members_of(@_); return scalar @m }

make_path($work);
for my $strict (0, 1) {
    start_php($strict);
    my $t0 = time;
    my @clients = map { { jar => undef, hist => [] } } 1 .. $CLIENTS;
    drive(\@clients, 20);

    my @bad = grep { join(',', map { $_->[0] } @{ $_->{hist} }) ne join(',', 1 .. 20) } @clients;
    ok(!@bad, "strict_mode=$strict: $CLIENTS clients x 20 requests, every counter counts 1..20")
        or diag 'e.g. ' . join(' ', map { "$_->[0]\@$_->[1]" } @{ $bad[0]{hist} });
    ok(!grep({ n_members(@{ $_->{hist} }) != 1 } @clients), 'each client on one member');
    ok(!grep({ !defined $_->{jar} || $_->{jar} !~ /^[0-9a-f]{40}~/ } @clients),
       'each cookie jar holds a prefixed PHPSESSID');

    # disable the member with the most clients
    my %on;
    push @{ $on{ $_->{hist}[0][1] } }, $_ for @clients;
    my ($victim) = sort { @{ $on{$b} } <=> @{ $on{$a} } } keys %on;
    bm_post('php', w => "http://127.0.0.1:$port{$victim}", w_status_D => 1);
    drive(\@clients, 10);
    bm_post('php', w => "http://127.0.0.1:$port{$victim}", w_status_D => 0);

    my (@moved_bad, @kept_bad);
    for my $c (@clients) {
        my @h = @{ $c->{hist} };
        my @after = @h[20 .. 29];
        my $counts = join ',', map { $_->[0] } @after;
        if ($h[0][1] eq $victim) {
            my @m = members_of(@after);
            push @moved_bad, $c unless $counts eq join(',', 1 .. 10) && @m == 1 && $m[0] ne $victim;
        }
        else {
            push @kept_bad, $c unless $counts eq join(',', 21 .. 30) && n_members(@h) == 1;
        }
    }
    my $n_victim = @{ $on{$victim} };
    ok($n_victim >= 5, "$victim disabled through balancer-manager: it had $n_victim clients");
    ok(!@moved_bad, 'each of them lost its session exactly once, then stuck to one other member')
        or diag 'e.g. ' . join(' ', map { "$_->[0]\@$_->[1]" } @{ $moved_bad[0]{hist} });
    ok(!@kept_bad, 'every other client went on 21..30 on its member')
        or diag 'e.g. ' . join(' ', map { "$_->[0]\@$_->[1]" } @{ $kept_bad[0]{hist} });
    my $secs = time - $t0;
    diag sprintf('strict_mode=%d: %d requests in %.1f s', $strict, $CLIENTS * 30, $secs);
    stop_php();
}
