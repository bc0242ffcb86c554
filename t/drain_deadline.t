# AffinityDrainTimeout and drain progress, on a private httpd this test
# starts (same MPM as the suite, members = the suite's backend vhosts,
# BalancerPersist On so that balancer-manager's drain flag outlives a
# graceful restart): before the deadline a draining member keeps its
# sessions; after it each moves once, with a new cookie and
# AFFINITY_STATUS=drained; taking drain off and on starts a new period; a
# graceful restart keeps the drain start; the progress fields and metrics
# under a known request pattern; ?member= and the documented jq line.
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
use PrivateHttpd;

plan tests => 36;

my $httpd = Apache::Test::vars('httpd');
my $srv = PrivateHttpd->new('drain-deadline');
my ($dir, $port) = ($srv->dir, $srv->port);
my @b = map { 'http://127.0.0.1:' . backend_port("backend$_") } 1 .. 2;
my @pfx = map { backend_port("pfx$_") } 1 .. 2;
my $ua = LWP::UserAgent->new(keep_alive => 0, timeout => 10);
my $DEADLINE = 3;

open my $fh, '>', "$dir/httpd.conf" or die "$dir/httpd.conf: $!";
print $fh $srv->head, <<"EOF";
LogLevel warn affinity:debug
StartServers 2
BalancerPersist On
LogFormat "%U %{AFFINITY_STATUS}e" st
CustomLog "$dir/status_log" st
<Location /affinity-status>
    SetHandler affinity-status
</Location>
<Location /balancer-manager>
    SetHandler balancer-manager
</Location>
ProxyPass /affinity-status !
ProxyPass /balancer-manager !
<Proxy "balancer://dr">
    BalancerMember "$b[0]"
    BalancerMember "$b[1]"
    ProxySet lbmethod=affinity
    AffinitySalt dr-salt
    AffinityDrainTimeout $DEADLINE
</Proxy>
ProxyPass "/dr/" "balancer://dr/"
<Proxy "balancer://drp">
    BalancerMember "http://127.0.0.1:$pfx[0]" route=p1
    BalancerMember "http://127.0.0.1:$pfx[1]" route=p2
    ProxySet lbmethod=affinity
    AffinityMode prefix JSESSIONID
    AffinitySalt drp-salt
    AffinityDrainTimeout 2
</Proxy>
ProxyPass "/drp/" "balancer://drp/"
EOF
close $fh;

# balancer-manager's own form: nonce from its page, Referer of the page
sub drain {
    my ($url, $on, $bal) = @_;
    $bal //= 'dr';
    my $page = $srv->get('/balancer-manager')->content;
    my ($nonce) = $page =~ /b=\Q$bal\E&amp;nonce=([0-9a-f-]+)/ or die "no nonce\n";
    my $res = $ua->post("http://127.0.0.1:$port/balancer-manager",
                        [ b => $bal, w => $url, nonce => $nonce,
                          w_status_N => $on ? 1 : 0 ],
                        Referer => "http://127.0.0.1:$port/balancer-manager");
    return $res->is_success;
}

sub member {
    my ($url) = @_;
    my $d = $srv->doc('&member=' . $url) or return undef;
    return $d->{balancers}[0]{members}[0];
}

# one request of the session carried by $cookie: [member port, new cookie]
sub visit {
    my ($cookie) = @_;
    my $res = $srv->get('/dr/hello.txt', $cookie ? (Cookie => "ROUTEID=$cookie") : ());
    my ($k) = ($res->header('X-Backend') // '') =~ /(\d)$/;
    return [ $k // 0, cookie_value($res), $res->code ];
}

unlink "$dir/status_log";
$srv->run('-k', 'start');
ok wait_until(20, sub { defined $srv->doc() }), 'private httpd started'
    or diag `tail -5 $dir/error_log`;

# 20 sessions, about half on each member
my @s = map { my $v = visit(); { at => $v->[0], cookie => $v->[1] } } 1 .. 20;
my @on1 = grep { $_->{at} == 1 } @s;
ok @on1 >= 3, scalar(@on1) . ' of 20 sessions on member 1';

my $m = member($b[0]);
ok $m && !defined $m->{drain}{since} && !$m->{draining},
   'member= gives that member only; not draining';
is scalar(@{ $srv->doc('&member=' . $b[0])->{balancers}[0]{members} }), 1, 'one member';
is $srv->get('/affinity-status?format=json&member=http://nowhere:1')->code, 404,
   'an unknown member= is a 404';

ok drain($b[0], 1), 'member 1 set to drain through balancer-manager';
my $t0 = time;
$m = member($b[0]);
ok $m->{draining} && $m->{drain}{since} >= $t0 - 1 && $m->{drain}{since} <= $t0 + 1,
   'draining since now';
is $m->{drain}{deadline}, $m->{drain}{since} + $DEADLINE, 'deadline = since + timeout';
my $since = $m->{drain}{since};

# before the deadline: kept, no new cookie, and new sessions go to member 2
my ($kept, $new_on2) = (0, 0);
for (@on1) {
    my $v = visit($_->{cookie});
    $kept++ if $v->[0] == 1 && !defined $v->[1];
}
$new_on2 += visit()->[0] == 2 for 1 .. 4;
is $kept, scalar(@on1), 'before the deadline every session stays, cookie unchanged';
is $new_on2, 4, 'new sessions go elsewhere while draining';
$m = member($b[0]);
ok !$m->{drain}{safe_to_stop} && $m->{drain}{session_requests_last_minute} == @on1,
   "progress: $m->{drain}{session_requests_last_minute} session requests this minute, not safe to stop";
like $srv->get('/affinity-status')->content, qr/still serving about \Q${\scalar @on1}\E session requests a minute/,
   'the page says it is still serving';
SKIP: {
    skip 'no jq', 1 unless `sh -c 'command -v jq'`;
    isnt system("curl -s 'http://127.0.0.1:$port/affinity-status?format=json&member=$b[0]' "
                . "| jq -e '.balancers[0].members[0].drain.safe_to_stop' >/dev/null"), 0,
         'the jq line exits non-zero while the member has session traffic';
}

# after the deadline: each moves once, with a new cookie, and stays moved
sleep 1 while time < $since + $DEADLINE + 1;
my ($moved, $stayed) = (0, 0);
for (@on1) {
    my $v = visit($_->{cookie});
    $moved++ if $v->[0] == 2 && defined $v->[1] && $v->[1] ne $_->{cookie};
    $_->{cookie} = $v->[1] // $_->{cookie};
}
for (@on1) {
    my $v = visit($_->{cookie});
    $stayed++ if $v->[0] == 2 && !defined $v->[1];
}
is $moved, scalar(@on1), 'after the deadline every session moves, with a new cookie';
is $stayed, scalar(@on1), 'and stays where it moved (moved once)';
my @drained = grep { /^\/dr\/\S+ drained$/ } do { open my $l, '<', "$dir/status_log"; <$l> };
is scalar(@drained), scalar(@on1), 'AFFINITY_STATUS=drained once per session';
$m = member($b[0]);
is $m->{requests}{drained} // 0, 0, 'drained counts on the member moved to, not the drained one';
my $m2 = member($b[1]);
is $m2->{requests}{drained}, scalar(@on1), 'member 2 counted the drained moves';
my $prom = $srv->get('/affinity-status?format=prometheus')->content;
like $prom, qr/^affinity_member_draining_since_seconds\{balancer="balancer:\/\/dr",member="\Q$b[0]\E"\} $since$/m,
     'metric: draining since';
like $prom, qr/^affinity_member_last_session_request_seconds\{balancer="balancer:\/\/dr",member="\Q$b[0]\E"\} [1-9]\d+$/m,
     'metric: last session request';
like $prom, qr/^affinity_requests_total\{balancer="balancer:\/\/dr",member="\Q$b[1]\E",status="drained"\} \d+$/m,
     'metric: drained requests';
SKIP: {
    skip 'no promtool', 1 unless `sh -c 'command -v promtool'`;
    open my $p, '|-', 'promtool check metrics >/dev/null 2>&1' or die;
    print $p $prom;
    close $p;
    is $?, 0, 'promtool check metrics is clean';
}

# the documented scripted check: safe to stop after 10 quiet seconds
my $last = member($b[0])->{drain}{last_session_request};
sleep 1 while time < $last + 11;
$m = member($b[0]);
ok $m->{drain}{safe_to_stop} && $m->{drain}{idle_seconds} >= 10, 'quiet for 10 s: safe to stop';
like $srv->get('/affinity-status')->content, qr/no session requests for \d+ s: safe to stop/,
     'the page says so in words';
SKIP: {
    skip 'no jq', 1 unless `sh -c 'command -v jq'`;
    is system("curl -s 'http://127.0.0.1:$port/affinity-status?format=json&member=$b[0]' "
              . "| jq -e '.balancers[0].members[0].drain.safe_to_stop' >/dev/null"), 0,
       'the jq line exits 0 once safe to stop';
}

# a graceful restart keeps the drain start
my $gen = $srv->generation();
$srv->run('-k', 'graceful');
ok wait_until(20, sub { $srv->generation() > $gen }), 'graceful restart';
is member($b[0])->{drain}{since}, $since, 'the drain start survives it';

# drain off and on: a new period
ok drain($b[0], 0) && !defined member($b[0])->{drain}{since}, 'drain off: no start';
sleep 1;
drain($b[0], 1);
my $since2 = member($b[0])->{drain}{since};
ok $since2 > $since && $since2 >= time - 1, 're-draining starts a new period';
# a session on member 1 (drain off meanwhile) is kept before the new deadline
drain($b[0], 0);
my $fresh;
for (1 .. 10) { my $x = visit(); if ($x->[0] == 1) { $fresh = $x->[1]; last } }
drain($b[0], 1);
is visit($fresh)->[0], 1, 'a session of the new period is kept before its deadline';

# prefix mode: the same deadline, its usual move (hashed; the application's
# next session cookie gets the new member's prefix)
{
    my $id1 = route_id('drp-salt', 'p1');
    my $id2 = route_id('drp-salt', 'p2');
    my $p1 = "http://127.0.0.1:$pfx[0]";
    my $ask = sub {
        my ($cookie, %h) = @_;
        my $res = $srv->get('/drp/hello.txt', Cookie => "JSESSIONID=$cookie", %h);
        return ($res->header('X-Backend') // '', join ' ', $res->header('Set-Cookie'));
    };
    my ($at) = $ask->("$id1~s1");
    drain($p1, 1, 'drp');
    my ($before) = $ask->("$id1~s1");
    is "$at $before", 'pfx1 pfx1', 'prefix mode: kept on the draining member before the deadline';
    my $t = time;
    sleep 1 while time < $t + 3 + 1;
    my ($after, $sc) = $ask->("$id1~s1", 'X-Set1' => 'JSESSIONID=s1; Path=/');
    is $after, 'pfx2', 'prefix mode: after the deadline it moves';
    like $sc, qr/JSESSIONID=\Q$id2\E~s1/, 'prefix mode: the application\'s cookie gets the new prefix';
    # the access log line is written after the response: wait for it
    my @log;
    wait_until(10, sub {
        @log = grep { m{^/drp/\S+ drained$} } do { open my $l, '<', "$dir/status_log"; <$l> };
        @log >= 1;
    });
    is scalar(@log), 1, 'prefix mode: logged AFFINITY_STATUS=drained';
}

# a bad value stops httpd at startup, naming the directive, file and line
for my $bad ('10m', '0') {
    my $conf = do { local $/; open my $c, '<', "$dir/httpd.conf" or die $!; <$c> };
    $conf =~ s/AffinityDrainTimeout $DEADLINE/AffinityDrainTimeout $bad/;
    open my $c, '>', "$dir/bad.conf" or die $!;
    print $c $conf;
    close $c;
    my $out = `$httpd -t -f $dir/bad.conf 2>&1`;
    ok $? != 0 && $out =~ /line \d+ of \Q$dir\E\/bad.conf:\s+AffinityDrainTimeout: "\Q$bad\E" is not a number of seconds from 1 to \d+, nor off; e.g. AffinityDrainTimeout 600/,
       "AffinityDrainTimeout $bad stops httpd at startup with the fix" or diag $out;
}
