# AffinitySlowStart on a private httpd this test starts (same MPM as the
# suite; members = the suite's backend vhosts): members there from the
# start are not ramped; a member enabled (or added) live through balancer-manager gets
# a share of new sessions that grows from well under its lbfactor share to
# all of it over the ramp (4 s here), while no session moves; the status
# page, JSON and metrics show the ramp; a graceful restart neither starts a
# ramp nor restarts one under way.  And the status page's try link: a
# member in hot standby gets no new sessions, but a browser that follows
# its link gets its cookie, reaches it and stays there.
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use File::Spec;
use HTTP::Request::Common ();
use IO::Socket::INET;
use JSON::PP ();
use POSIX ();
use LWP::UserAgent;
use Time::HiRes qw(time sleep);
use lib 't/lib';
use AffinityTest;
use PrivateHttpd;

plan tests => 37;

my $srv = PrivateHttpd->new('slowstart');
my ($dir, $port) = ($srv->dir, $srv->port);
my ($mpm, $libexec) = ($srv->mpm, $srv->libexec);

# A member this test can stop and start: a tiny HTTP server in a child
my $mini_sock = IO::Socket::INET->new(LocalAddr => '127.0.0.1', Listen => 16, ReuseAddr => 1)
    or die "no port for the mini member: $!\n";
my $mini_port = $mini_sock->sockport;
my $mini_pid;
sub mini_start {
    my $sock = $mini_sock // IO::Socket::INET->new(LocalAddr => "127.0.0.1:$mini_port",
                                                   Listen => 16, ReuseAddr => 1)
        or die "mini member: cannot listen again on $mini_port: $!\n";
    undef $mini_sock;
    $mini_pid = fork // die "fork: $!\n";
    if (!$mini_pid) {
        # no END blocks of the test in here: leave with _exit
        $SIG{TERM} = sub { POSIX::_exit(0) };
        my $deadline = time + 120;     # stops by itself
        while (time < $deadline) {
            my $c = $sock->accept or next;
            while (defined(my $line = <$c>)) {
                last if $line =~ /^\r?\n$/;
            }
            print $c "HTTP/1.1 200 OK\r\nX-Backend: backend9\r\nContent-Length: 2\r\n"
                   . "Connection: close\r\n\r\nok";
            close $c;
        }
        POSIX::_exit(0);
    }
    close $sock;
}
sub mini_stop {
    return unless $mini_pid;
    local $?;                   # not the test's exit status
    kill 'TERM', $mini_pid;
    waitpid $mini_pid, 0;
    undef $mini_pid;
}
END { mini_stop() }
mini_start();
my @b = map { 'http://127.0.0.1:' . backend_port("backend$_") } 1 .. 4;
my $ua = LWP::UserAgent->new(keep_alive => 1, timeout => 10);
my $RAMP = 4;

open my $fh, '>', "$dir/httpd.conf" or die "$dir/httpd.conf: $!";
print $fh $srv->head, <<"EOF";
LogLevel warn
LoadModule authz_host_module $libexec/mod_authz_host.so
LoadModule socache_shmcb_module $libexec/mod_socache_shmcb.so
StartServers 2
KeepAliveTimeout 2
<Location /affinity-status>
    SetHandler affinity-status
    Require ip 127.0.0.1
</Location>
<Location /balancer-manager>
    SetHandler balancer-manager
    Require ip 127.0.0.1
</Location>
<Proxy "balancer://ramp">
    BalancerMember "$b[0]"
    BalancerMember "$b[1]"
    BalancerMember "$b[2]"
    ProxySet lbmethod=affinity
    AffinitySalt ss-salt
    AffinitySlowStart $RAMP
</Proxy>
ProxyPass "/ramp/" "balancer://ramp/"
<Proxy "balancer://long">
    BalancerMember "$b[0]"
    BalancerMember "$b[1]"
    ProxySet lbmethod=affinity
    AffinitySalt ss-salt
    AffinitySlowStart 60
</Proxy>
ProxyPass "/long/" "balancer://long/"
<Proxy "balancer://stby">
    BalancerMember "$b[0]" route=s1
    BalancerMember "$b[1]" route=s2
    BalancerMember "$b[2]" route=s3 status=+H
    ProxySet lbmethod=affinity
    AffinitySalt ss-salt
    AffinityCookie SBY "Path=/stby/"
    AffinityCookieMaxIdle 600
    AffinitySlowStart 60
</Proxy>
ProxyPass "/stby/" "balancer://stby/"
<Proxy "balancer://err">
    BalancerMember "$b[0]"
    BalancerMember "http://127.0.0.1:$mini_port" retry=1
    ProxySet lbmethod=affinity
    AffinitySalt ss-salt
    AffinitySlowStart 60
</Proxy>
ProxyPass "/err/" "balancer://err/"
<Proxy "balancer://grow">
    BalancerMember "$b[0]"
    BalancerMember "$b[1]"
    ProxySet lbmethod=affinity growth=1
    AffinitySalt ss-salt
    AffinitySlowStart 60
</Proxy>
ProxyPass "/grow/" "balancer://grow/"
<Proxy "balancer://pfx">
    BalancerMember "$b[0]" route=p1
    BalancerMember "$b[1]" route=p2 status=+H
    ProxySet lbmethod=affinity
    AffinityMode prefix JSESSIONID
    AffinitySalt ss-salt
</Proxy>
ProxyPass "/pfx/" "balancer://pfx/"
<Proxy "balancer://lrn">
    BalancerMember "$b[0]" route=l1
    BalancerMember "$b[1]" route=l2 status=+H
    ProxySet lbmethod=affinity
    AffinityMode learn SID
    AffinitySalt ss-salt
</Proxy>
ProxyPass "/lrn/" "balancer://lrn/"
EOF
close $fh;

# name => { ratio, seconds_left } of balancer $name's members
sub ramps {
    my ($name) = @_;
    my $d = $srv->doc() or return {};
    my ($bal) = grep { $_->{name} eq "balancer://$name" } @{ $d->{balancers} };
    return { map { ($_->{name} => $_->{slow_start}) } @{ $bal->{members} } };
}

# balancer-manager edit of one member, as its form posts it
sub edit {
    my ($balancer, $member, %params) = @_;
    my $page = $srv->get('/balancer-manager')->content;
    my ($nonce) = $page =~ /b=\Q$balancer\E&amp;nonce=([0-9a-f-]+)/;
    die "no nonce for $balancer\n" unless $nonce;
    my $req = HTTP::Request::Common::POST($srv->url('/balancer-manager'),
        [ b => $balancer, w => $member, nonce => $nonce, %params ],
        Referer => $srv->url('/balancer-manager'));
    my $res = $ua->request($req);
    die 'balancer-manager: ' . $res->status_line . "\n" unless $res->is_success;
}

# a new session (no cookie): [backend number, cookie value]
sub new_session {
    my ($path, $name) = @_;
    my $res = $srv->get($path);
    my ($k) = (backend($res) =~ /(\d)$/);
    return [$k // 0, cookie_value($res, $name // 'ROUTEID')];
}

# a request of a session: backend number, and whether a cookie was set
sub in_session {
    my ($path, $value, $name) = @_;
    my $res = $srv->get($path, Cookie => ($name // 'ROUTEID') . "=$value");
    my ($k) = (backend($res) =~ /(\d)$/);
    return ($k // 0, scalar affinity_cookies($res, $name // 'ROUTEID'));
}

# new sessions over $secs seconds from now, in one-second buckets (at most
# $cap per bucket): [ [share of member $k, n], ... ], and the sessions made
sub shares {
    my ($path, $k, $secs, $cap, $sessions) = @_;
    my $t0 = time;
    my @buckets;
    for my $s (0 .. $secs - 1) {
        my ($on, $n) = (0, 0);
        while (time < $t0 + $s + 1) {
            if ($n < $cap) {
                my $x = new_session($path);
                $n++;
                $on++ if $x->[0] == $k;
                push @$sessions, $x if $sessions;
            }
            else {
                sleep 0.02;
            }
        }
        push @buckets, [$n ? $on / $n : 0, $n];
    }
    return @buckets;
}

sub fmt { return join ' ', map { sprintf '%.2f/%d', @$_ } @_ }

ok $srv->start(), 'private httpd started' or BAIL_OUT('the private httpd did not start');

# ---- members there from the start are not ramped -------------------------------
{
    my $r = ramps('ramp');
    ok !grep({ $r->{$_}{ratio} != 1 } @b[0 .. 2]), 'after a full start every member is at its full share'
        or diag explain $r;
    my @x = shares('/ramp/hello.txt', 3, 1, 30);
    cmp_ok $x[0][0], '>=', 0.25, 'and a member gets its share of new sessions in the first second'
        or diag fmt(@x);
}

# ---- a member enabled live ramps up; no session moves --------------------------
{
    # sessions on the other two, made before; they must stay where they are
    my (@old, %seen);
    while (@old < 6) {
        my $x = new_session('/ramp/hello.txt');
        push @old, $x if $x->[0] && $x->[0] != 3 && $seen{ $x->[0] }++ < 3;
    }
    edit('ramp', $b[2], w_status_D => 1);
    my $r = ramps('ramp');      # the page, too, sees it taking no new sessions
    my @off = shares('/ramp/hello.txt', 3, 1, 20);
    is $off[0][0], 0, 'disabled: no new session on it';
    edit('ramp', $b[2], w_status_D => 0);
    $r = ramps('ramp');
    cmp_ok $r->{ $b[2] }{ratio}, '<', 0.4, "enabled live: it ramps ($r->{$b[2]}{ratio} of its share)";
    cmp_ok $r->{ $b[2] }{seconds_left}, '>', $RAMP - 1.5, "with about $RAMP s left ($r->{$b[2]}{seconds_left})";
    is $r->{ $b[0] }{ratio}, 1, 'the others are at their full share';

    my @during;
    my @x = shares('/ramp/hello.txt', 3, $RAMP + 1, 60, \@during);
    diag "share of the enabled member per second (full share 0.33): " . fmt(@x);
    cmp_ok $x[0][0], '<', 0.17, 'first second: well under its full share';
    cmp_ok $x[0][0], '<', $x[$RAMP - 1][0], 'it grows';
    cmp_ok $x[$RAMP][0], '>=', 0.25, 'after the ramp: its full share';
    cmp_ok $x[$RAMP][0], '<=', 0.42, '(and not more)';
    $r = ramps('ramp');
    is $r->{ $b[2] }{ratio}, 1, 'the page: ramp done';

    my @moved = grep { my ($k, $c) = in_session('/ramp/hello.txt', $_->[1]); $k != $_->[0] || $c } @old;
    is scalar(@moved), 0, 'sessions made before the ramp never moved';
    my @on3 = grep { $_->[0] == 3 } @during;
    @moved = grep { my ($k, $c) = in_session('/ramp/hello.txt', $_->[1]); $k != 3 || $c } @on3;
    ok @on3 && !@moved, scalar(@on3) . ' sessions that started on it during the ramp stay there';
}

# ---- a member added live ramps ---------------------------------------------------
{
    my $req = HTTP::Request::Common::POST($srv->url('/balancer-manager'),
        [ b => 'grow', b_wyes => 1, b_nwrkr => $b[3],
          nonce => ($srv->get('/balancer-manager')->content =~ /b=grow&amp;nonce=([0-9a-f-]+)/)[0] ],
        Referer => $srv->url('/balancer-manager'));
    $ua->request($req);
    edit('grow', $b[3], w_status_D => 0);
    my @x = shares('/grow/hello.txt', 4, 1, 30);
    my $r = ramps('grow');
    ok defined $r->{ $b[3] } && $r->{ $b[3] }{ratio} < 0.2,
       'added live through balancer-manager and enabled: it ramps ('
       . ($r->{ $b[3] }{ratio} // 'not on the page') . ')';
    ok $x[0][1] && $x[0][0] < 0.15, 'its first second: well under its full share (0.33)'
       or diag fmt(@x);
}

# ---- a member back from error ramps ---------------------------------------------
{
    my $mini = "http://127.0.0.1:$mini_port";
    my @x = shares('/err/hello.txt', 9, 1, 20);
    cmp_ok $x[0][0], '>=', 0.4, 'the stoppable member takes its share' or diag fmt(@x);
    mini_stop();
    shares('/err/hello.txt', 9, 1, 10);
    my $st = (grep { $_->{name} eq $mini }
              map { @{ $_->{members} } } grep { $_->{name} eq 'balancer://err' }
              @{ $srv->doc()->{balancers} })[0]{status} // '';
    like $st, qr/Err/, "stopped: in error ($st)";
    mini_start();
    sleep 1.5;                  # its retry time
    @x = shares('/err/hello.txt', 9, 1, 30);
    my $r = ramps('err');
    ok $r->{$mini}{ratio} < 0.2 && $x[0][0] < 0.25,
       "back from error: it ramps ($r->{$mini}{ratio}; first second "
       . fmt(@x) . ', full share 0.5)';
}

# ---- a graceful restart is not a change ----------------------------------------
{
    edit('long', $b[1], w_status_D => 1);
    ramps('long');
    edit('long', $b[1], w_status_D => 0);
    my $before = ramps('long')->{ $b[1] };
    like $srv->get('/affinity-status')->content, qr/slow start: \d+% of its share, \d+ s left/,
         'the HTML page shows the ramp';
    like $srv->get('/affinity-status?format=prometheus')->content,
         qr/^affinity_member_slow_start_ratio\{balancer="balancer:\/\/long",member="\Q$b[1]\E"\} 0\.\d+$/m,
         'the metric shows it';
    ok $srv->graceful(), 'graceful restart';
    my $r = ramps('ramp');
    ok !grep({ $r->{$_}{ratio} != 1 } @b[0 .. 2]), 'after it, no member of a settled balancer ramps'
        or diag explain $r;
    my @x = shares('/ramp/hello.txt', 3, 1, 30);
    cmp_ok $x[0][0], '>=', 0.25, 'and new sessions spread as before' or diag fmt(@x);
    my $after = ramps('long')->{ $b[1] };
    ok $after->{ratio} < 1 && $after->{seconds_left} < $before->{seconds_left}
       && $after->{seconds_left} > 50,
       "a ramp under way goes on where it was ($before->{seconds_left} s left before, "
       . "$after->{seconds_left} after)";
}

# ---- try a member in hot standby ------------------------------------------------
{
    my @x = shares('/stby/hello.txt', 3, 1, 30);
    is $x[0][0], 0, 'hot standby: no new session on it';
    my $page = $srv->get('/affinity-status')->content;
    my ($link) = grep { my $l = $_; $l =~ s/&amp;/&/g; $l =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge;
                        $l =~ /[?&]try=\Q$b[2]\E(&|$)/ && $l =~ /balancer=balancer:\/\/stby(&|$)/ }
                   $page =~ /href="([^"]*[?&](?:amp;)?try=[^"]*)"/g;
    ok $link, 'the page offers a try link for it' or diag $page;
    $link //= '';
    $link =~ s/&amp;/&/g;
    my $res = LWP::UserAgent->new(max_redirect => 0)->get($srv->url("/affinity-status$link"));
    my $value = cookie_value($res, 'SBY');
    ok $value && $value =~ /^[0-9a-f]{40}\.[0-9a-f]{8}\.[0-9a-f]{8}\.[0-9a-f]{24}$/,
       'the link sets its cookie, dated and signed as the finder issues it'
       or diag $res->as_string;
    my @k = map { (in_session('/stby/hello.txt', $value // '', 'SBY'))[0] } 1 .. 10;
    ok !grep({ $_ != 3 } @k), 'the tester reaches the standby member, and stays' or diag "@k";
    @x = shares('/stby/hello.txt', 3, 1, 30);
    is $x[0][0], 0, 'other new clients still never reach it';
    my $deny = LWP::UserAgent->new(max_redirect => 0, local_address => '127.0.0.2')
        ->get($srv->url("/affinity-status$link"));
    ok !cookie_value($deny, 'SBY'), 'a client the page refuses gets no cookie ('
       . $deny->code . ')';

    # then out of standby (balancer-manager): it ramps; the tester stays
    edit('stby', $b[2], w_status_H => 0);
    my $r = ramps('stby');
    cmp_ok $r->{ $b[2] }{ratio}, '<', 0.2, "out of standby: it ramps ($r->{$b[2]}{ratio})";
    @x = shares('/stby/hello.txt', 3, 1, 30);
    cmp_ok $x[0][0], '<', 0.15, 'new sessions reach it, slowly' or diag fmt(@x);
    @k = map { (in_session('/stby/hello.txt', $value // '', 'SBY'))[0] } 1 .. 5;
    ok !grep({ $_ != 3 } @k), 'the tester is still on it' or diag "@k";
}

# ---- prefix and learn mode: the page says what to do instead -------------------
{
    my $d = $srv->doc();
    my ($pfx) = grep { $_->{name} eq 'balancer://pfx' } @{ $d->{balancers} };
    my ($m) = grep { $_->{name} eq $b[1] } @{ $pfx->{members} };
    my $q = '?try=' . $b[1] . '&balancer=balancer://pfx';
    my $res = LWP::UserAgent->new(max_redirect => 0)->get($srv->url("/affinity-status$q"));
    ok $res->is_success && !$res->header('Set-Cookie')
       && $res->content =~ /JSESSIONID=\Q$m->{route_id}\E~value/,
       'prefix mode: no cookie; the page gives the prefix to put on the application cookie'
       or diag $res->as_string;
    $res = $srv->get("/affinity-status?try=$b[1]&balancer=balancer://lrn");
    ok $res->is_success && !$res->header('Set-Cookie')
       && $res->content =~ /learn mode cannot send a tester to one member/,
       'learn mode: no cookie; the page says it is not possible' or diag $res->as_string;
    like $srv->get('/affinity-status')->content, qr/To try a member: prefix mode sets no cookie/,
         'the status page says so under the balancer';
}
