# A member's life in the key modes (hash, domain), on a private httpd this
# test starts (same MPM as the suite; members = the suite's backend vhosts
# and two slow python members started here), edited over HTTP through
# balancer-manager:
#  - AffinityDrainTimeout: a key whose member drains stays on it (status
#    hash/domain) until the deadline, then goes where the plain order
#    without that member sends it (a twin balancer without the timeout
#    shows where), logged drained; drain off and on starts a new period; a
#    draining member that is also disabled loses its keys at once;
#  - AffinitySlowStart with AffinityHashBalanceFactor: a member in its ramp
#    has a smaller bound, so with one request in progress on each member a
#    key of the ramping member goes to the other; before the ramp it stays.
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use File::Spec;
use IO::Socket::INET;
use JSON::PP ();
use LWP::UserAgent;
use POSIX ();
use Time::HiRes qw(sleep time);
use lib 't/lib';
use AffinityTest;
use PrivateHttpd;

plan tests => 32;

my $srv = PrivateHttpd->new('keys-life');
my ($dir, $port) = ($srv->dir, $srv->port);
my @b = map { 'http://127.0.0.1:' . backend_port("backend$_") } 1 .. 3;
my $ua = LWP::UserAgent->new(keep_alive => 0, timeout => 20);
my $DEADLINE = 4;
my $SLOW = 3;           # seconds each request to a slow member takes

# two slow members (t/lib/slow_backend.py), for requests held in progress
my $script = Apache::Test::vars('t_dir') . '/lib/slow_backend.py';
my (@pids, @slow);
for my $i (1 .. 2) {
    unlink "$dir/port$i";
    my $pid = fork // die "fork: $!";
    if (!$pid) { exec('python3', $script, "slow$i", "$dir/port$i", $SLOW, '180') or POSIX::_exit(127) }
    push @pids, $pid;
}
my $parent = $$;
for my $i (1 .. 2) {
    for (1 .. 100) { last if -s "$dir/port$i"; sleep 0.05 }
    open my $fh, '<', "$dir/port$i" or die "slow$i did not start\n";
    push @slow, 'http://127.0.0.1:' . scalar <$fh>;
}

open my $fh, '>', "$dir/httpd.conf" or die "$dir/httpd.conf: $!";
print $fh $srv->head, <<"EOF";
LogLevel warn affinity:trace1
StartServers 5
LogFormat "%U %{X-Key}i %{Host}i %{AFFINITY_STATUS}e" st
CustomLog "$dir/status_log" st
<Location /affinity-status>
    SetHandler affinity-status
</Location>
<Location /balancer-manager>
    SetHandler balancer-manager
</Location>
ProxyPass /affinity-status !
ProxyPass /balancer-manager !
EOF
# hkt, dkt: the deadline; hkp, dkp: their twins without it (the plain order)
for my $bal (qw(hkt hkp dkt dkp)) {
    my $mode = $bal =~ /^h/ ? 'hash "%{HTTP:X-Key}"' : 'domain';
    my $salt = $bal =~ /^h/ ? 'keys-salt' : 'hosts-salt';
    my $timeout = $bal =~ /p$/ ? '' : "AffinityDrainTimeout $DEADLINE";
    print $fh <<"EOF";
<Proxy "balancer://$bal">
    BalancerMember "$b[0]"
    BalancerMember "$b[1]"
    BalancerMember "$b[2]"
    ProxySet lbmethod=affinity
    AffinityMode $mode
    AffinitySalt $salt
    $timeout
</Proxy>
ProxyPass "/$bal/" "balancer://$bal/"
EOF
}
print $fh <<"EOF";
<Proxy "balancer://hs">
    BalancerMember "$slow[0]"
    BalancerMember "$slow[1]"
    ProxySet lbmethod=affinity
    AffinityMode hash "%{HTTP:X-Key}"
    AffinitySalt slow-salt
    AffinityHashBalanceFactor 150
    AffinitySlowStart 600
</Proxy>
ProxyPass "/hs/" "balancer://hs/"
EOF
close $fh;

END {
    if ($$ == $parent) {
        $srv->stop();
        kill 'TERM', @pids;
    }
}

# balancer-manager's own form: nonce from its page, Referer of the page
sub bm_set {
    my ($bal, $url, %flags) = @_;
    my $page = $srv->get('/balancer-manager')->content;
    my ($nonce) = $page =~ /b=\Q$bal\E&amp;nonce=([0-9a-f-]+)/ or die "no nonce\n";
    my $res = $ua->post("http://127.0.0.1:$port/balancer-manager",
                        [ b => $bal, w => $url, nonce => $nonce,
                          map { ("w_status_$_" => $flags{$_}) } keys %flags ],
                        Referer => "http://127.0.0.1:$port/balancer-manager");
    return $res->is_success;
}

# the drain start of $url in balancer $bal, from the status page's JSON
sub drain_since {
    my ($bal, $url) = @_;
    my $d = $srv->doc('&member=' . $url) or return undef;
    for my $x (@{ $d->{balancers} }) {
        next unless $x->{name} eq "balancer://$bal";
        return $x->{members}[0]{drain}{since};
    }
    return undef;
}

sub twin { return $_[0] =~ s/t$/p/r }

# one request of key $k (hash) or host $k (domain): the member's number
sub at {
    my ($bal, $k) = @_;
    my $res = $bal =~ /^h/ ? $srv->get("/$bal/hello.txt", 'X-Key' => $k)
                           : $srv->get("/$bal/hello.txt", Host => $k);
    my ($n) = ($res->header('X-Backend') // '') =~ /(\d)$/;
    return $n // 0;
}

# the statuses logged for balancer $bal since line $from of the status log
sub statuses {
    my ($bal, $from) = @_;
    my @l = do { open my $l, '<', "$dir/status_log" or return (); <$l> };
    my %n;
    for (@l[$from .. $#l]) {
        $n{$1}++ if m{^/\Q$bal\E/\S+ .* (\S+)$};
    }
    return \%n;
}
sub log_count { my @l = do { open my $l, '<', "$dir/status_log" or return 0; <$l> }; return scalar @l }
# the access log line is written after the response: wait for $n of $bal's
sub settle {
    my ($bal, $from, $n) = @_;
    wait_until(10, sub { my $s = statuses($bal, $from); my $t = 0; $t += $_ for values %$s; $t >= $n });
}

unlink "$dir/status_log";
$srv->run('-k', 'start');
ok wait_until(20, sub { defined $srv->doc() }), 'private httpd started'
    or diag `tail -5 $dir/error_log`;

# ---- AffinityDrainTimeout in hash and domain mode ------------------------------

my %keys = (hkt => [map { "tenant-$_" } 1 .. 24], dkt => [map { "site$_.example" } 1 .. 24]);
my (%home, %ref);
for my $bal (qw(hkt dkt)) {
    my @diff;
    for my $k (@{ $keys{$bal} }) {
        $home{$bal}{$k} = at($bal, $k);
        push @diff, $k if at(twin($bal), $k) != $home{$bal}{$k};
    }
    ok !@diff && 3 <= grep({ $_ == 1 } values %{ $home{$bal} }),
       "$bal: the twin agrees on all 24 keys; "
       . grep({ $_ == 1 } values %{ $home{$bal} }) . ' on member 1';
}
my %on1 = map { my $bal = $_; ($bal => [grep { $home{$bal}{$_} == 1 } @{ $keys{$bal} }]) } qw(hkt dkt);

for my $bal (qw(hkt hkp dkt dkp)) {
    bm_set($bal, $b[0], N => 1) or die "balancer-manager refused\n";
}
my $since = drain_since('hkt', $b[0]);
ok defined $since && abs($since - time) <= 2, 'member 1 drains in every balancer';
my $n0 = log_count();

# the plain order without member 1: the twins moved its keys at once
for my $bal (qw(hkt dkt)) {
    $ref{$bal}{$_} = at(twin($bal), $_) for @{ $on1{$bal} };
}
ok !grep({ $ref{$_->[0]}{$_->[1]} == 1 || !$ref{$_->[0]}{$_->[1]} }
          map { my $bal = $_; map { [$bal, $_] } @{ $on1{$bal} } } qw(hkt dkt)),
   'without the timeout (the twins) member 1\'s keys move at once';

# before the deadline: every key stays where it was, status as usual
for my $bal (qw(hkt dkt)) {
    my @moved = grep { at($bal, $_) != $home{$bal}{$_} } @{ $keys{$bal} };
    ok !@moved, "$bal: before the deadline every key stays (member 1's too)"
        or diag "moved: @moved";
}
# the drain progress counts the keys it keeps as its session requests
for my $bal (qw(hkt dkt)) {
    my $d = $srv->doc('&member=' . $b[0]);
    my ($x) = grep { $_->{name} eq "balancer://$bal" } @{ $d->{balancers} };
    my $dr = $x->{members}[0]{drain};
    ok $dr->{session_requests_last_minute} >= @{ $on1{$bal} } && !$dr->{safe_to_stop}
       && $dr->{last_session_request} >= $since,
       "$bal: drain progress: $dr->{session_requests_last_minute} kept-key requests this minute, not safe to stop";
}
ok time < $since + $DEADLINE, 'those requests were all before the deadline'
    or diag 'the machine is too slow for this deadline';
settle($_, $n0, 24) for qw(hkt dkt);
my $st = statuses('hkt', $n0);
is_deeply [sort keys %$st], ['hash'], 'hash: status hash before the deadline';
$st = statuses('dkt', $n0);
is_deeply [sort keys %$st], ['domain'], 'domain: status domain before the deadline';

# after it: member 1's keys go where the plain order says, logged drained;
# the others stay, with their usual status
sleep 0.2 while time < $since + $DEADLINE + 1.2;
$n0 = log_count();
my %drained_n;
for my $bal (qw(hkt dkt)) {
    my @wrong = grep { at($bal, $_) != $ref{$bal}{$_} } @{ $on1{$bal} };
    ok !@wrong, "$bal: after the deadline member 1's keys go where the plain order without it says"
        or diag "wrong: @wrong";
    my @moved = grep { $home{$bal}{$_} != 1 && at($bal, $_) != $home{$bal}{$_} } @{ $keys{$bal} };
    ok !@moved, "$bal: the other keys stay" or diag "moved: @moved";
    $drained_n{$bal} = @{ $on1{$bal} };
}
settle($_, $n0, 24) for qw(hkt dkt);
$st = statuses('hkt', $n0);
is $st->{drained}, $drained_n{hkt}, "hash: each of member 1's keys logged drained ($drained_n{hkt})";
is $st->{hash}, 24 - $drained_n{hkt}, 'hash: the others logged hash';
$st = statuses('dkt', $n0);
is $st->{drained}, $drained_n{dkt}, "domain: each of member 1's hosts logged drained ($drained_n{dkt})";
is $st->{domain}, 24 - $drained_n{dkt}, 'domain: the others logged domain';
my $lookup = $srv->get('/affinity-status?format=json&key=' . $on1{hkt}[0])->content;
like $lookup, qr{"balancer":"balancer://hkt","member":"\Q$b[$ref{hkt}{ $on1{hkt}[0] } - 1]\E"},
     'the status page\'s ?key= lookup agrees after the deadline';
like join('', log_lines('keys-life/error_log')), qr/AFF0131: balancer:\/\/hkt: the member of the request's key has been draining for longer than AffinityDrainTimeout: it goes to /,
     'AFF0131 at trace1 says why';

# drain off: the keys come back; on again: a new period, they stay
bm_set('hkt', $b[0], N => 0);
ok !grep({ at('hkt', $_) != 1 } @{ $on1{hkt} }), 'drain off: member 1 has its keys again';
sleep 1;
bm_set('hkt', $b[0], N => 1);
my $since2 = drain_since('hkt', $b[0]);
ok $since2 && $since2 > $since, 'drain on again: a new drain start';
ok !grep({ at('hkt', $_) != 1 } @{ $on1{hkt} }) && time < $since2 + $DEADLINE,
   're-draining: the keys stay until the new deadline';

# draining and disabled: gone, its keys move at once (as without a timeout)
bm_set('hkt', $b[0], D => 1);
$n0 = log_count();
my @wrong = grep { at('hkt', $_) != $ref{hkt}{$_} } @{ $on1{hkt} };
ok !@wrong && time < $since2 + $DEADLINE,
   'draining and disabled before the deadline: the keys move at once, as the plain order says'
   or diag "wrong: @wrong";
settle('hkt', $n0, scalar @{ $on1{hkt} });
is_deeply [sort keys %{ statuses('hkt', $n0) }], ['hash'], 'and are logged hash (not drained: it is gone)';
bm_set('hkt', $b[0], D => 0, N => 0);

# ---- AffinitySlowStart in the bounded-load sense -------------------------------

# a key for each slow member, found with the status page's ?key= (idle)
my (%key_of);
for my $i (1 .. 200) {
    my $body = $srv->get("/affinity-status?format=json&key=k$i")->content;
    my ($mem) = $body =~ m{"balancer":"balancer://hs","member":"([^"]+)"} or next;
    $key_of{$mem} //= "k$i";
    last if keys %key_of == 2;
}
my ($ka, $kb) = @key_of{@slow};
ok $ka && $kb, 'a key for each slow member';

# one request held in progress on each member, then one more of $ka's key:
# its member has 1 of 2 in progress, 100% of its share with factor 150 at
# full weight (200 < 150 x 3 x 1/2), over it at a ramp under 44%
sub probe {
    my @kids;
    for my $k ($kb, $ka) {
        my $pid = fork // die "fork: $!";
        if (!$pid) { $srv->get('/hs/x', 'X-Key' => $k); POSIX::_exit(0) }
        push @kids, $pid;
        sleep 0.3;
    }
    sleep 0.7;
    my $res = $srv->get('/hs/x', 'X-Key' => $ka);
    waitpid $_, 0 for @kids;
    return $res->header('X-Backend') // '';
}
my $got = probe();
is $got, 'slow1', 'not ramping: the key stays on its member with one request in progress on each';

# disable, look (the ?key= lookup sees it taking no new sessions), enable:
# its ramp starts (600 s: about 10% for the rest of this test)
bm_set('hs', $slow[0], D => 1);
$srv->get("/affinity-status?format=json&key=$ka");
bm_set('hs', $slow[0], D => 0);
$srv->get("/affinity-status?format=json&key=$ka");
my ($ramp) = grep { $_->{name} eq 'balancer://hs' } @{ $srv->doc('&member=' . $slow[0])->{balancers} };
$ramp = $ramp->{members}[0]{slow_start}{ratio};
ok $ramp < 0.2, "the status page shows its ramp ($ramp)";
$got = probe();
is $got, 'slow2', 'ramping: the same key goes to the next member (a lower bound)';
my $bounded = 0;
$bounded += $_ for $srv->get('/affinity-status?format=json')->content =~ /"bounded":(\d+)/g;
ok $bounded >= 1, "counted as bounded ($bounded)";
