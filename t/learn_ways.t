# Every way of reaching an affinity balancer (issue 19, items 3 and 4), on
# private front ends (t/lib/LearnHarness.pm), one child of 16 threads:
#   ProxyPass, ProxyPassMatch, SetHandler "proxy:balancer://app", a
#   server-level RewriteRule [P], a per-directory RewriteRule [P], and
#   <Location> + ProxyPass without a path.
# - learn mode's store lookups run outside the balancer's lock on each: with
#   a store that accepts and never answers (as t/learn_hang.t), a request
#   carrying 4 values waits for it, and requests without the cookie to the
#   same balancer in the same child are not held behind it;
# - the balancer's <Proxy> settings apply on each, also where httpd does no
#   proxy walk (SetHandler, per-directory [P]): AffinityMode learn and
#   AffinitySalt there are in force (a session is learned; cookie mode's
#   ROUTEID is the salted ID, never SHA1("127.0.0.1:PORT")).
# Runs in the suite's event pass only (threads share a lock only there).
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use Digest::SHA qw(sha1_hex);
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
my @ways = (['ProxyPass', '/app/hello.txt'],
            ['ProxyPassMatch', '/ppm/hello.txt'],
            ['SetHandler', '/sh/hello.txt'],
            ['SetHandler, learn set in its <Location>', '/shl/hello.txt'],
            ['RewriteRule [P], server', '/rw/hello.txt'],
            ['RewriteRule [P], per-directory', '/rwd/hello.txt'],
            ['<Location> + ProxyPass', '/loc/hello.txt']);
plan tests => 1 + 3 * @ways + 1 + 2 * @ways + 2;

my $module = File::Spec->rel2abs(Apache::Test::vars('serverroot') . '/../.libs/mod_affinity.so');
my $top = File::Spec->rel2abs(Apache::Test::vars('t_logs') . '/learn-ways');
remove_tree($top);
make_path($top);
my $RUN = "$$-" . int(rand(1e6));
my $HOLD = 3;                   # seconds a lookup waits for the store
my $libexec = LearnHarness::apxs_q('LIBEXECDIR');

# The hanging store (as t/learn_hang.t): notes in a file that a command
# arrived, answers nothing, closes HOLD s later; stops by itself after 90 s.
my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                   Listen => 64, ReuseAddr => 1) or die "listen: $!";
my $hang_port = $listen->sockport;
my $got = "$top/store-got-command";
my $hang_pid = fork // die "fork: $!";
if (!$hang_pid) {
    my %held;
    my $end = time + 90;
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
            if (defined $n && $n == 0) {
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
    local $?;
    LearnHarness::stop($_) for @fes;
    if ($hang_pid) { kill 'KILL', $hang_pid; waitpid $hang_pid, 0; }
}

sub get { LearnHarness::get(@_) }
sub backend { LearnHarness::backend($_[0]) }
sub st { LearnHarness::status($_[0]) }
sub timed {
    my $t0 = time;
    my $r = get(@_);
    return ($r, time - $t0);
}

# the ways, and a second balancer in cookie mode with a salt in its <Proxy>
sub ways_conf {
    my ($dir, $members) = @_;
    make_path("$dir/htdocs/$_") for qw(sh shl rwd ck);
    for my $d (qw(sh shl rwd ck)) {
        open my $h, '>', "$dir/htdocs/$d/hello.txt" or die; print $h "hello\n"; close $h;
    }
    return [
        "LoadModule rewrite_module $libexec/mod_rewrite.so",
        'ProxyPassMatch "^/ppm/(.*)$" "balancer://app/$1"',
        '<Location "/sh/">', '    SetHandler "proxy:balancer://app"', '</Location>',
        '<Location "/shl/">', '    SetHandler "proxy:balancer://app"',
        '    AffinityMode learn SID', '    AffinitySalt shared-salt', '</Location>',
        'RewriteEngine On',
        'RewriteRule "^/rw/(.*)$" "balancer://app/$1" [P]',
        "<Directory \"$dir/htdocs/rwd\">", '    RewriteEngine On',
        '    RewriteRule "^(.*)$" "balancer://app/$1" [P]', '</Directory>',
        '<Location "/loc/">', '    ProxyPass "balancer://app/"', '</Location>',
        # cookie mode, salted in its <Proxy>; members by host:port (no route)
        '<Proxy "balancer://ck">',
        (map { "    BalancerMember \"http://127.0.0.1:$members->{$_}\"" } sort keys %$members),
        '    ProxySet lbmethod=affinity', '    AffinitySalt ck-salt', '</Proxy>',
        '<Location "/ck/">', '    SetHandler "proxy:balancer://ck"', '</Location>',
        'ProxyPass "/ckp/" "balancer://ck/"',
    ];
}

# appended to the front end's configuration, which names its members' ports
sub add_ways {
    my ($fe) = @_;
    open my $c, '>>', $fe->{conf} or die "$fe->{conf}: $!";
    print $c join("\n", @{ ways_conf($fe->{dir}, $fe->{members}) }), "\n";
    close $c;
}

# ---- lookups outside the lock, every way ----------------------------------------
{
    my $dir = "$top/hang";
    my $fe = LearnHarness::frontend(
        module => $module, dir => $dir, mpm => 'event',
        store => "memcache:127.0.0.1:$hang_port",
        extra => ['StartServers 1', 'ServerLimit 1', 'MaxRequestWorkers 16',
                  'MinSpareThreads 1', 'MaxSpareThreads 16']);
    add_ways($fe);
    push @fes, $fe;
    ok(LearnHarness::start($fe), 'a front end whose store hangs starts')
        or diag $LearnHarness::LAST_ERROR;

    for my $w (@ways) {
        my ($name, $path) = @$w;
        # a fresh child for each way: connections the hanging store broke
        # stay in the providers' pools (issue 19 item 7)
        LearnHarness::stop($fe);
        LearnHarness::start($fe) or diag $LearnHarness::LAST_ERROR;
        # a request carrying 4 values, in the background, until one reaches
        # the store (after a failure the store is left alone for 2 s, and
        # APR's memcache client tries a server marked dead every 5 s)
        my $bg_file = "$top/bg";
        my $bg;
        for my $try (1 .. 5) {
            unlink $got, $bg_file;
            $bg = fork // die;
            if (!$bg) {
                my ($r, $t) = timed($fe, $path,
                                    Cookie => join '; ', map { "SID=hang$_-$RUN" } 1 .. 4);
                open my $o, '>', $bg_file or die;
                printf $o "%d %.3f %s\n", $r->code, $t, backend($r) || '-';
                close $o;
                POSIX::_exit(0);
            }
            LearnHarness::wait_for(1.5, sub { -s $got || -s $bg_file });
            last if -s $got;
            waitpid $bg, 0;
            sleep 1;
        }
        ok(-s $got, "$name: a request with 4 values waits for the store");
        my @took;
        my $ok = 1;
        for (1 .. 3) {
            my ($r, $t) = timed($fe, $path);
            push @took, sprintf '%.2f', $t;
            $ok &&= $r->code < 500 && backend($r) ne '';
        }
        my $slowest = (sort { $b <=> $a } @took)[0];
        ok($ok && $slowest < 1.5,
           "$name: requests without the cookie are not held behind it (under the lock)")
            or diag "took @took s (the store hangs for $HOLD s)";
        waitpid $bg, 0;
        open my $in, '<', $bg_file or die "$bg_file: $!";
        my ($code, $took, $be) = split ' ', scalar <$in>;
        close $in;
        ok($code < 500 && $be ne '-' && $took >= $HOLD - 1 && $took < $HOLD + 5,
           "$name: the waiting request is served when the store gives up (${took}s)")
            or diag "$code $took $be";
    }
    LearnHarness::stop($fe);
}

# ---- the <Proxy> settings apply, every way -------------------------------------
{
    my $dir = "$top/conf";
    my $fe = LearnHarness::frontend(module => $module, dir => $dir, mpm => 'event');
    add_ways($fe);
    push @fes, $fe;
    ok(LearnHarness::start($fe), 'a front end with every way starts')
        or diag $LearnHarness::LAST_ERROR;

    for my $w (@ways) {
        my ($name, $path) = @$w;
        my $v = "cf-$name-$RUN";
        $v =~ s/[^A-Za-z0-9-]/_/g;
        my $m = LearnHarness::learn_session($fe, $v, undef, $path);
        my @r = map { get($fe, $path, Cookie => "SID=$v") } 1 .. 3;
        ok(!grep({ st($_) ne 'valid' || backend($_) ne $m } @r),
           "$name: AffinityMode learn of <Proxy balancer://app> applies: learned, valid")
            or diag join ' ', map { st($_) . '@' . backend($_) } @r;
        ok(!grep({ ($_->header('Set-Cookie') // '') =~ /ROUTEID/ } @r),
           "$name: no route cookie (not cookie mode)");
    }

    # cookie mode: the salt of <Proxy balancer://ck> is in force either way
    for my $p (['SetHandler', '/ck/hello.txt'], ['ProxyPass', '/ckp/hello.txt']) {
        my $r = get($fe, $p->[1]);
        my ($id) = ($r->header('Set-Cookie') // '') =~ /ROUTEID=([0-9a-f]{40})/;
        my $port = $fe->{members}{ backend($r) } // 0;
        my $want = sha1_hex("ck-salt127.0.0.1:$port");
        ok(defined $id && $id eq $want && $id ne sha1_hex("127.0.0.1:$port"),
           "$p->[0]: ROUTEID is the ID salted with <Proxy>'s AffinitySalt")
            or diag(($id // 'no ROUTEID') . " for " . backend($r) . ", want $want");
    }
}
