# docs/deploying.md, step by step: its sh blocks, extracted from the page
# and run as written (the variables pointed at a private httpd this test
# starts, AffinityDrainTimeout shortened to 3 s), with the site-specific
# steps (stop, deploy) done here to a member of our own
# (t/lib/affinity_backend.py on 127.0.0.1).  Sessions on the member stay
# until the deadline, move once, the watch step ends with "safe to stop";
# in hot standby the try link's cookie reaches the new version and a new
# client never does; re-enabled, it ramps (AffinitySlowStart shortened to
# 5 s) and takes new sessions again; no request fails.
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use Apache::TestRequest ();
use File::Spec;
use IO::Socket::INET;
use JSON::PP ();
use LWP::UserAgent;
use lib 't/lib';
use AffinityTest;
use PrivateHttpd qw(free_port);

my $top = File::Spec->rel2abs(Apache::Test::vars('top_dir'));
my $page = do { local $/; open my $fh, '<', "$top/docs/deploying.md" or die $!; <$fh> };
my %step;
my @order;
while ($page =~ /^<!-- deploy-step: ([^>]+?) -->\n```sh\n(.*?)^```$/msg) {
    my ($name, $code) = ($1, $2);
    $step{$name} = $code;
    push @order, $name;
}
my ($vars) = $page =~ /^```sh\n(MANAGER=.*?)^```$/ms;

plan tests => 23;

is join(',', @order), 'drain,watch,stop (site-specific),deploy (site-specific),try,re-enable',
   'the walk-through names its steps in order';
ok $vars, 'the walk-through sets its variables';

my $srv = PrivateHttpd->new('deploy-walkthrough');
my ($dir, $port) = ($srv->dir, $srv->port);
my ($mpm, $libexec) = ($srv->mpm, $srv->libexec);
my $mport = free_port();
my $other = 'http://127.0.0.1:' . backend_port('backend1');
my $member = "http://127.0.0.1:$mport";
my $helper = "$top/t/lib/affinity_backend.py";
my $ua = LWP::UserAgent->new(keep_alive => 0, timeout => 10);

my $backend_pid;
sub start_member {
    my ($name) = @_;
    $backend_pid = fork // die "fork: $!";
    if (!$backend_pid) {
        exec 'python3', $helper, $name, '--ipv4', $mport, '--lifetime', 120;
        exit 1;
    }
    return wait_until(10, sub { IO::Socket::INET->new(PeerAddr => "127.0.0.1:$mport", Timeout => 1) });
}
sub stop_member {
    return unless $backend_pid;
    kill 'TERM', $backend_pid;
    waitpid $backend_pid, 0;
    undef $backend_pid;
}

open my $fh, '>', "$dir/httpd.conf" or die "$dir/httpd.conf: $!";
print $fh $srv->head, <<"EOF";
LogLevel warn
LoadModule authz_host_module $libexec/mod_authz_host.so
StartServers 2
LogFormat "%U %{AFFINITY_STATUS}e" st
CustomLog "$dir/status_log" st
<Proxy "balancer://app">
    BalancerMember "$other"
    BalancerMember "$member" retry=0
    ProxySet lbmethod=affinity
    AffinitySalt walkthrough
    AffinityDrainTimeout 3
    AffinitySlowStart 5
</Proxy>
ProxyPass "/balancer-manager" "!"
ProxyPass "/affinity-status" "!"
ProxyPass "/" "balancer://app/"
<Location "/balancer-manager">
    SetHandler balancer-manager
    Require local
</Location>
<Location "/affinity-status">
    SetHandler affinity-status
    Require local
</Location>
EOF
close $fh;

END {
    stop_member();
    $srv->run('-k', 'stop') if -f "$dir/httpd.pid";
}

# the page's variables, pointed at the private httpd
(my $env = $vars) =~ s{^MANAGER=.*$}{MANAGER=http://127.0.0.1:$port/balancer-manager}m;
$env =~ s{^STATUS=.*$}{STATUS=http://127.0.0.1:$port/affinity-status}m;
$env =~ s{^MEMBER=.*$}{MEMBER=$member}m;
$env =~ s{^APP=.*$}{APP=http://127.0.0.1:$port/hello.txt}m;
sub run_step {
    my ($name, $limit) = @_;
    open my $sh, '>', "$dir/step.sh" or die $!;
    print $sh "set -e\ncd '$dir'\n$env\n$step{$name}";
    close $sh;
    # the operator's own tools (curl, jq), not httpd: no sanitizer runtime
    # preloaded into them when the suite runs under ASan
    local $ENV{LD_PRELOAD};
    delete $ENV{LD_PRELOAD};
    my $out = `timeout $limit bash $dir/step.sh 2>&1`;
    return ($? == 0, $out);
}

ok start_member('v1'), 'the member (version 1) runs';
$srv->run('-k', 'start');
ok wait_until(20, sub { $srv->get('/affinity-status?format=json')->is_success }), 'private httpd started';

# sessions: those on the member are the ones the deploy must not cut
my @sessions;
for (1 .. 16) {
    my $res = $srv->get('/hello.txt');
    push @sessions, { cookie => cookie_value($res), at => backend($res) };
}
my @mine = grep { $_->{at} eq 'v1' } @sessions;
ok @mine >= 2, scalar(@mine) . ' of 16 sessions on the member';
my $failed = 0;
sub visit_all {
    for my $s (@sessions) {
        my $res = $srv->get('/hello.txt', Cookie => "ROUTEID=$s->{cookie}");
        $failed++ unless $res->is_success;
        my $c = cookie_value($res);
        # a session is its cookie's member: bare IDs, so sessions on one
        # member share a value; a move is a new value
        if ($c && $c ne $s->{cookie}) {
            $s->{moves}++;
            $s->{cookie} = $c;
        }
        $s->{at} = backend($res);
    }
}

my ($ok, $out) = run_step('drain', 20);
ok $ok && $out =~ /balancer-manager: 200/, 'step 1 (drain): balancer-manager took it' or diag $out;
my $t0 = time;
visit_all();
is scalar(grep { $_->{at} eq 'v1' } @sessions), scalar(@mine), 'before the deadline the sessions stay';
# the deadline counts in whole seconds from the first request that saw the
# drain, which may fall in the second after $t0 (a slow first visit, or
# $t0 late in its second): 3 s + 1 for the rounding + 2 for that
sleep 1 while time < $t0 + 6;
visit_all();
is scalar(grep { $_->{at} eq 'v1' } @sessions), 0, 'after the deadline every session has moved';

($ok, $out) = run_step('watch', 60);
ok $ok && $out =~ /safe to stop\s*$/, 'step 2 (watch): ends with "safe to stop"' or diag $out;

stop_member();
ok 1, 'step 3 (stop): the member is stopped';
visit_all();
ok start_member('v2'), 'step 4 (deploy): version 2 runs';
visit_all();

($ok, $out) = run_step('try', 20);
ok $ok && $out =~ /balancer-manager: 200/ && $out =~ /try link: 200/, 'step 5 (try): standby set, try link followed' or diag $out;
like $out, qr/^with the try cookie: v2$/m, 'the try cookie reaches the standby member (version 2)';
unlike $out, qr/^a new client: v2$/m, 'the request without it does not';
my ($tried) = map { chomp(my $l = $_); (split /\t/, $l)[6] } grep { /\tROUTEID\t/ } log_lines("deploy-walkthrough/try.jar");
ok $tried, 'the jar holds the member\'s cookie';
my $on = 0;
for (1 .. 10) {
    my $res = $srv->get('/hello.txt', Cookie => "ROUTEID=" . ($tried // ''));
    $failed++ unless $res->is_success;
    $on++ if backend($res) eq 'v2';
}
is $on, 10, 'the tester stays on it (10 of 10)';
my $stray = 0;
for (1 .. 30) {
    my $res = $srv->get('/hello.txt');
    $failed++ unless $res->is_success;
    $stray++ if backend($res) eq 'v2';
}
is $stray, 0, "a new client never reaches the standby member ($stray of 30)";
visit_all();

($ok, $out) = run_step('re-enable', 20);
ok $ok && $out =~ /balancer-manager: 200/ && $out =~ /^draining: false, /m, 'step 6 (re-enable): balancer-manager took it, not draining' or diag $out;
my ($ratio) = $out =~ /slow start: ([0-9.]+) of its share/;
ok defined $ratio && $ratio < 1, 'the JSON shows the ramp right away (ratio ' . ($ratio // 'none') . ')' or diag $out;
my $new = 0;
my $tries = 0;
my $until = time + 10;
while (time < $until && $new < 3) {
    my $res = $srv->get('/hello.txt');
    $tries++;
    $failed++ unless $res->is_success;
    $new++ if backend($res) eq 'v2';
}
ok $new > 0, "the re-enabled member takes new sessions ($new of $tries)";
visit_all();

is $failed, 0, 'no request failed during the deploy';
is scalar(grep { ($_->{moves} // 0) > 1 } @sessions), 0, 'every session moved at most once';
is scalar(grep { $_->{moves} } @sessions), scalar(@mine), 'the sessions of the member moved, the others did not';
