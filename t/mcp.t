# A real MCP application behind the balancer: three stateful MCP servers on
# the streamable HTTP transport (t/mcp/server.mjs, the MCP TypeScript SDK,
# sessions in each process's memory, Mcp-Session-Id issued by the SDK) behind
# a private front end (t/lib/LearnHarness.pm), and the SDK's own client
# (t/mcp/client.mjs): 20 sessions side by side, each initialises, lists the
# tools and calls the "count" tool 50 times; after 25 calls of every session
# the client disables member mcp2 through the balancer-manager.  A call that
# gets 404 (a member that does not know the session) makes the session
# initialise again, once, as an MCP client does.
#
# (a) lbmethod=byrequests: the sessions do not stick, most calls fail (this
#     is the run the test must be able to fail).
# (b) AffinityMode learn header:Mcp-Session-Id, event and prefork front ends:
#     no call fails; the sessions of mcp2 initialise again once at call 26
#     and stick to their new member, every other session counts 1..50 on
#     one member.
# (c) The same checks as (b) through today's cookie learning (the members
#     also send the session id as a cookie, mod_headers turns the request
#     header into that cookie): shows that the harness and the checks of (b)
#     pass when the sessions do stick.
# Runs in the suite's event pass only (the front ends have their own MPM);
# skipped, saying why, without node or the SDK (tools/setup installs both).
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use File::Path qw(make_path remove_tree);
use File::Spec;
use JSON::PP ();
use POSIX ();
use Time::HiRes qw(time sleep);
use lib 't/lib';
use LearnHarness;

my $SESSIONS = 20;
my $CALLS = 50;
my $HALF = int($CALLS / 2);
my $DISABLED = 'mcp2';

my $mcp = File::Spec->rel2abs(Apache::Test::vars('serverroot') . '/mcp');
my $node = `sh -c 'command -v node' 2>/dev/null`;
chomp $node;
my ($node_major) = $node ? `$node --version 2>/dev/null` =~ /^v(\d+)\./ : ();
my $have_sdk = -f "$mcp/node_modules/\@modelcontextprotocol/sdk/package.json";
my $mpm = Apache::Test::config()->{server}{mpm} // '';

if ($mpm ne 'event') {
    plan skip_all => "runs its own front ends: once, in the event pass (mpm: $mpm)";
}
plan tests => 3 + 1 + 4 + 2 * 4,
    need { 'node 18 or later (Debian nodejs; tools/setup installs it)' => ($node_major // 0) >= 18,
           'the MCP TypeScript SDK in t/mcp/node_modules (tools/setup runs npm ci there)' => $have_sdk };

my $module = File::Spec->rel2abs(Apache::Test::vars('serverroot') . '/../.libs/mod_affinity.so');
my $work = File::Spec->rel2abs(Apache::Test::vars('t_logs') . '/mcp');
remove_tree($work);
make_path($work);

my (%pgid, @fes);
sub stop_members {
    kill 'TERM', -$_ for values %pgid;
    for my $pid (values %pgid) {
        for (1 .. 50) { last if waitpid($pid, POSIX::WNOHANG()) != 0; sleep 0.1 }
        kill 'KILL', -$pid;
        waitpid($pid, 0);
    }
    %pgid = ();
}
END {
    stop_members();
    LearnHarness::stop($_) for @fes;
}

# node SCRIPT ARGS in a process group of its own, output to $log
sub spawn {
    my ($log, $out, @args) = @_;
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        POSIX::setsid();
        open STDOUT, '>', $out // $log;
        open STDERR, '>>', $log;
        { exec $node, @args; }
        POSIX::_exit(127);
    }
    return $pid;
}

sub start_members {
    my ($tag, $port, @args) = @_;
    for my $name (sort keys %$port) {
        $pgid{$name} = spawn("$work/$tag-$name.log", undef, "$mcp/server.mjs",
                             '--port', $port->{$name}, '--name', $name,
                             '--max-seconds', 300, @args);
    }
    for my $name (sort keys %$port) {
        LearnHarness::wait_for(20, sub { LearnHarness::port_open($port->{$name}) })
            or die "MCP server $name did not start (see $work/$tag-$name.log)\n";
    }
}

# One client run through front end $fe; its JSON summary (undef if none)
sub run_client {
    my ($tag, $fe) = @_;
    my $out = "$work/$tag-client.json";
    my $pid = spawn("$work/$tag-client.log", $out, "$mcp/client.mjs",
                    '--url', LearnHarness::url($fe, '/app/mcp'),
                    '--sessions', $SESSIONS, '--calls', $CALLS, '--timeout', 120,
                    '--disable', LearnHarness::url($fe, '/balancer-manager'),
                    '--balancer', 'app',
                    '--member', "http://127.0.0.1:$fe->{members}{$DISABLED}");
    my $end = time + 150;
    while (waitpid($pid, POSIX::WNOHANG()) == 0) {
        if (time > $end) {
            kill 'KILL', -$pid;
            waitpid($pid, 0);
            last;
        }
        sleep 0.1;
    }
    open my $fh, '<', $out or return undef;
    local $/;
    my $text = <$fh>;
    my $sum = eval { JSON::PP::decode_json($text) };
    diag "$tag: client printed no summary; see $work/$tag-client.log" unless $sum;
    return $sum;
}

sub figures {
    my ($tag, $sum) = @_;
    my $t = $sum->{totals};
    my %on;
    for my $s (@{ $sum->{sessions} }) {
        $on{$_->{member} // 'failed'}++ for @{ $s->{calls} };
    }
    diag sprintf('%s: %d sessions x %d calls in %.1f s: %d ok, %d failed, %d answered 404, '
                 . '%d re-initialisations (%d sessions), %d initialisations failed; calls per member: %s',
                 $tag, $t->{sessions}, $t->{callsPerSession}, $sum->{elapsedMs} / 1000,
                 $t->{ok}, $t->{failed}, $t->{notFound}, $t->{reinit},
                 $t->{sessionsReinitialised}, $t->{initFailed},
                 join(' ', map { "$_=$on{$_}" } sort keys %on));
}

# The checks of a run where the sessions stick: [ok, name, why not] each
sub checks {
    my ($tag, $sum) = @_;
    my @s = @{ $sum->{sessions} || [] };
    my $t = $sum->{totals};
    my @mine = grep { ($_->{calls}[0]{member} // '') eq $DISABLED } @s;
    my @other = grep { ($_->{calls}[0]{member} // '') ne $DISABLED } @s;
    my $counts = sub { join ',', map { $_->{count} } @_ };
    my $members = sub { my %m = map { ($_->{member} // 'failed') => 1 } @_; sort keys %m };
    my @bad_other = grep {
        my @c = @{ $_->{calls} };
        my @m = $members->(@c);
        $_->{reinit} || $counts->(@c) ne join(',', 1 .. $CALLS) || @m != 1
    } @other;
    my @bad_mine = grep {
        my @c = @{ $_->{calls} };
        my @before = @c[0 .. $HALF - 1];
        my @after = @c[$HALF .. $#c];
        my @m = $members->(@after);
        $_->{reinit} != 1
            || $counts->(@before) ne join(',', 1 .. $HALF)
            || $counts->(@after) ne join(',', 1 .. $CALLS - $HALF)
            || grep({ $_->{id} != 1 } @after)
            || @m != 1 || $m[0] eq $DISABLED
    } @mine;
    my $show = sub {
        my ($s) = @_;
        return '' unless $s;
        return "e.g. session $s->{session} (reinit $s->{reinit}): "
            . join(' ', map { ($_->{member} // '-') . ":$_->{count}" } @{ $s->{calls} })
            . ($s->{errors} && @{ $s->{errors} } ? "; $s->{errors}[0]" : '');
    };
    return (
        [$t && !$sum->{timedOut} && $t->{failed} == 0 && @s == $SESSIONS,
         "$tag: $SESSIONS sessions x $CALLS calls, no call failed",
         $t ? "$t->{failed} failed" . ($sum->{timedOut} ? ', timed out' : '') : 'no summary'],
        [($sum->{disable}{status} // 0) == 200 && @mine >= 1 && @other >= 1,
         "$tag: $DISABLED disabled live after $HALF calls of every session, with sessions on it",
         sprintf('disable: %s; %d sessions on %s, %d elsewhere',
                 JSON::PP->new->canonical->encode($sum->{disable} // {}),
                 scalar @mine, $DISABLED, scalar @other)],
        [!@bad_other,
         "$tag: the other sessions stay on one member, counting 1..$CALLS, never re-initialised",
         scalar(@bad_other) . ' of ' . scalar(@other) . ' broken; ' . $show->($bad_other[0])],
        [!@bad_mine,
         "$tag: the sessions of $DISABLED re-initialise once, then stick to one other member (1..$HALF again)",
         scalar(@bad_mine) . ' of ' . scalar(@mine) . ' broken; ' . $show->($bad_mine[0])],
    );
}

sub report {
    for my $c (@_) {
        ok($c->[0], $c->[1]) or diag $c->[2];
    }
}

# A front end and its three members, a client run, all stopped again
sub scenario {
    my ($tag, %o) = @_;
    my %port = map { ("mcp$_" => LearnHarness::free_port()) } 1 .. 3;
    my $fe = LearnHarness::frontend(dir => "$work/fe-$tag", module => $module,
                                    external => \%port, %{ $o{fe} });
    push @fes, $fe;
    LearnHarness::start($fe) or die "$tag front end: $LearnHarness::LAST_ERROR";
    start_members($tag, \%port, @{ $o{server_args} || [] });
    my $sum = run_client($tag, $fe);
    figures($tag, $sum) if $sum;
    stop_members();
    LearnHarness::stop($fe);
    return $sum;
}

# (a) byrequests: the same run fails
{
    my $sum = scenario('byrequests', fe => { lbmethod => 'byrequests' });
    ok($sum && !$sum->{timedOut}, 'byrequests: the client ran to the end and printed its summary');
    my $t = $sum ? $sum->{totals} : { failed => 0 };
    ok($t->{failed} >= $SESSIONS * $CALLS / 2,
       "byrequests: most calls fail ($t->{failed} of " . $SESSIONS * $CALLS . ')');
    my @c = $sum ? checks('byrequests', $sum) : ();
    my @caught = grep { !$_->[0] } @c;
    ok(@caught >= 2, 'byrequests: the checks the affinity runs must pass find it broken')
        or diag join("\n", map { "$_->[1]: $_->[0]" } @c);
}

# (b) header learning: httpd must take the directive, and the sessions stick
my $header = 'header:Mcp-Session-Id';
{
    my $probe = LearnHarness::frontend(dir => "$work/fe-probe", module => $module,
                                       external => { mcp1 => LearnHarness::free_port() },
                                       cookie => $header);
    my ($rc, $out) = LearnHarness::httpd_run($probe, '-t');
    ok(!$rc, "httpd -t accepts AffinityMode learn $header") or diag $out;
    for my $fe_mpm (qw(event prefork)) {
        my $sum = scenario("header-$fe_mpm", fe => { cookie => $header, mpm => $fe_mpm });
        report(checks("learn $header, $fe_mpm", $sum // {}));
    }
}

# (c) the harness with today's cookie learning: the sessions stick
{
    my $sum = scenario('cookie', server_args => ['--cookie', 'MCPSID'], fe => {
        cookie => 'MCPSID',
        # learn mode's lookup runs after RequestHeader (both fixups)
        extra => ['RequestHeader set Cookie "expr=MCPSID=%{req:Mcp-Session-Id}" '
                  . '"expr=-n %{req:Mcp-Session-Id}"'],
    });
    report(checks('learn MCPSID (the session id as a cookie)', $sum // {}));
}
