# Session lifetime (AffinityCookieMaxIdle, AffinityCookieMaxLife) and the
# stock-cookie migration (AffinityLegacyRoutes).  Balancers in
# t/conf/lifetime.conf.in.  Dated values are forged here with the format the
# docs/modes.md documents, so dates in the past and future need no waiting; the
# "brief" balancer runs in real time for a few seconds.
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use Apache::TestRequest;
use Digest::SHA qw(sha1 hmac_sha1_hex);
use File::Spec;
use IO::Socket::INET;
use LWP::UserAgent;
use Time::HiRes qw(time sleep);
use lib 't/lib';
use AffinityTest;

plan tests => 100;

my $SALT = 's3cret';
my %id = (
    backend1 => route_id($SALT, '127.0.0.1:' . backend_port('backend1')),
    backend2 => route_id($SALT, 'blue'),
);

# The documented format: ID.FIRST.LAST.MAC, dates as 8 lowercase hex digits,
# MAC = first 12 bytes of HMAC-SHA1(SHA1("mod_affinity cookie mac:" . salt),
# balancer name . NUL . ID bytes . FIRST . LAST (32 bits big-endian each)),
# lowercase hex.
sub dated {
    my ($id, $first, $last, $balancer, $salt) = @_;
    my $key = sha1('mod_affinity cookie mac:' . ($salt // $SALT));
    my $msg = pack 'a* x H40 N N', $balancer, $id, $first, $last;
    return sprintf('%s.%08x.%08x.', $id, $first, $last)
           . substr(hmac_sha1_hex($msg, $key), 0, 24);
}

sub parse_dated {
    my ($v) = @_;
    return () unless defined $v && $v =~ /^([0-9a-f]{40})\.([0-9a-f]{8})\.([0-9a-f]{8})\.([0-9a-f]{24})$/;
    return ($1, hex $2, hex $3, $4);
}

# The access-log line of the one request tagged $tag.
sub line_for {
    my ($path, $tag) = @_;
    my $line;
    wait_until(5, sub { ($line) = grep { m{^\Q$path\E\?\Q$tag\E } } log_lines('affinity_log'); $line });
    return $line // '(no log line)';
}

my $run = int(time) . $$;      # tags unique to this run
my $n = 0;
sub get {
    my ($path, $cookie) = @_;
    my $tag = 't' . $run . '-' . ++$n;
    my $r = fetch("$path?$tag", defined $cookie ? (Cookie => "ROUTEID=$cookie") : ());
    return ($r, $tag);
}

my $D = '/dated/hello.txt';
my $bal = 'balancer://dated';

# ---- New sessions and the format --------------------------------------------
{
    my $t0 = int(time);
    my ($r, $tag) = get($D);
    my $v = cookie_value($r);
    my ($cid, $first, $last, $mac) = parse_dated($v);
    ok defined $cid, 'a new session gets a dated value' or diag $v // '(none)';
    ok length($v) <= 100 && $v =~ /^[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]+$/,
       'of RFC 6265 cookie-octets, at most 100 characters';
    ok $cid && $cid eq $id{ backend($r) }, 'naming the member that served';
    ok $first && $first == $last && abs($first - $t0) <= 2, 'first and last issued now';
    is $v, dated($cid, $first, $last, $bal), 'the MAC is exactly as documented';
    like line_for($D, $tag), qr/ 200 status=new route=$cid changed=1 /, 'status new, route changed';

    ($r, $tag) = get($D, $v);
    is backend($r) . ' ' . scalar(affinity_cookies($r)), backend($r) . ' 0',
       'the value is honoured, no Set-Cookie while fresh';
    ok $cid && backend($r) && $id{ backend($r) } eq $cid, 'on the same member';
    like line_for($D, $tag), qr/ 200 status=valid route=$cid changed=- /, 'status valid';
}

# ---- Forged dates -------------------------------------------------------------
sub outcome {
    my ($cookie) = @_;
    my ($r, $tag) = get($D, $cookie);
    my ($status) = line_for($D, $tag) =~ /status=(\S+)/;
    return ($r, $status // '?');
}

{
    my $now = int(time);
    my $b2 = $id{backend2};
    my ($r, $st);

    ($r, $st) = outcome(dated($b2, $now - 100, $now - 70, $bal));
    is $r->code . " $st " . scalar(affinity_cookies($r)), '200 expired 1',
       'idle longer than MaxIdle: expired, new session with a new cookie';
    my @d = parse_dated(cookie_value($r));
    ok @d && abs($d[1] - $now) <= 2 && $d[1] == $d[2], 'the new cookie has new dates';

    ($r, $st) = outcome(dated($b2, $now - 130, $now - 5, $bal));
    is "$st " . scalar(affinity_cookies($r)), 'expired 1',
       'older than MaxLife though recently active: expired';

    ($r, $st) = outcome(dated($b2, $now - 50, $now - 10, $bal));
    is backend($r) . " $st " . scalar(affinity_cookies($r)), 'backend2 valid 0',
       'last issued less than MaxIdle/4 ago: kept, no Set-Cookie';

    ($r, $st) = outcome(dated($b2, $now - 50, $now - 20, $bal));
    is backend($r) . " $st " . scalar(affinity_cookies($r)), 'backend2 valid 1',
       'past MaxIdle/4: kept and re-issued';
    @d = parse_dated(cookie_value($r));
    ok @d && $d[0] eq $b2 && $d[1] == $now - 50 && abs($d[2] - $now) <= 2,
       'same member, same first date, new last date';
    ok @d && cookie_value($r) eq dated($b2, $d[1], $d[2], $bal), 'signed as documented';
    my ($r2, $tag2) = get($D, dated($b2, $now - 50, $now - 20, $bal));
    like line_for($D, $tag2), qr/status=valid route=$b2 changed=- /,
       'a refresh leaves BALANCER_ROUTE_CHANGED unset';

    ($r, $st) = outcome(dated($b2, $now - 119, $now - 16, $bal));
    @d = parse_dated(cookie_value($r));
    ok @d && $d[1] == $now - 119, 'a refresh near MaxLife still keeps the first date';
    ($r, $st) = outcome(dated($b2, $now - 125, $now, $bal));
    is $st, 'expired', 'so the active session ends at MaxLife';

    # tampering
    my $good = dated($b2, $now - 30, $now - 30, $bal);
    (my $later = $good) =~ s/^(\w{40}\.\w{8}\.)\w{8}/sprintf '%s%08x', $1, $now/e;
    ($r, $st) = outcome($later);
    is "$st " . scalar(affinity_cookies($r)) . ' ' . $r->code, 'invalid 1 200',
       'a date rewritten without the key: invalid, new session';
    (my $flipped = $good) =~ s/(.)$/$1 eq '0' ? '1' : '0'/e;
    ($r, $st) = outcome($flipped);
    is $st, 'invalid', 'a MAC changed by one digit: invalid';
    # once the genuine value has verified (and is in that child's cache of
    # verified values), values sharing its first bytes or its MAC are still
    # judged by the MAC: each sent right after it on one kept-alive
    # connection, so that the same child answers both
    my $ka = LWP::UserAgent->new(keep_alive => 1, timeout => 10);
    my $url = 'http://' . Apache::TestRequest::hostport() . $D;
    my $after_good = sub {
        my ($cookie) = @_;
        my @tags = map { 't' . $run . '-' . ++$n } 1 .. 2;
        $ka->get("$url?$tags[0]", Cookie => "ROUTEID=$good");
        my $rr = $ka->get("$url?$tags[1]", Cookie => "ROUTEID=$cookie");
        my ($s0) = line_for($D, $tags[0]) =~ /status=(\S+)/;
        my ($s1) = line_for($D, $tags[1]) =~ /status=(\S+)/;
        return ($rr, ($s0 // '?') . ' then ' . ($s1 // '?'));
    };
    ($r, $st) = $after_good->($good);
    is backend($r) . " $st", 'backend2 valid then valid', 'the genuine value twice: valid';
    ($r, $st) = $after_good->($later);
    is "$st " . scalar(affinity_cookies($r)), 'valid then invalid 1',
       'after it verified, its ID and MAC with a later date: still invalid';
    ($r, $st) = $after_good->($flipped);
    is $st, 'valid then invalid', 'after it verified, its text with the MAC changed by one digit: still invalid';
    ($r, $st) = $after_good->(substr($good, 0, 82));
    is $st, 'valid then invalid', 'after it verified, its first 82 characters: still invalid';
    ($r, $st) = outcome(dated($b2, $now - 30, $now - 30, $bal, 'other-salt'));
    is $st, 'invalid', 'a MAC made with another salt: invalid';
    ($r, $st) = outcome(dated($b2, $now - 30, $now - 30, 'balancer://twin'));
    is $st, 'invalid', "a value of another balancer (same members and salt): invalid";
    ($r, $st) = outcome(uc $good);
    is $st, 'invalid', 'uppercase hex: invalid';

    my @cuts = (82, 81, 70, 59, 58, 41);
    my @bad = grep { my ($rr, $s) = outcome(substr($good, 0, $_)); $rr->code != 200 || $s ne 'invalid' } @cuts;
    ok !@bad, 'truncated values (83 -> ' . join(',', @cuts) . ' chars) are invalid, never an error'
        or diag "not invalid at: @bad";
    ($r, $st) = outcome($good . '0');
    is $st, 'invalid', 'one character too many: invalid';
    # issue 19: cutting the dates off a value must not keep the session
    my $stale = dated($b2, $now - 100, $now - 70, $bal);
    for my $cut ([$good, 'a fresh'], [$stale, 'an expired']) {
        ($r, $st) = outcome(substr($cut->[0], 0, 40));
        @d = parse_dated(cookie_value($r));
        ok $r->code == 200 && $st eq 'expired' && @d && abs($d[1] - $now) <= 2 && $d[1] == $d[2],
           "the bare ID of $cut->[1] value: expired, a new session with new dates"
            or diag "$st " . (cookie_value($r) // 'no cookie');
    }

    ($r, $st) = outcome(dated($b2, $now + 400, $now + 400, $bal));
    is "$st " . $r->code, 'invalid 200', 'dates more than 300 s ahead: invalid';
    ($r, $st) = outcome(dated($b2, $now - 10, $now + 400, $bal));
    is $st, 'invalid', 'a last date more than 300 s ahead: invalid';
    ($r, $st) = outcome(dated($b2, $now + 200, $now + 200, $bal));
    is backend($r) . " $st", 'backend2 valid', 'dates up to 300 s ahead (clock skew): valid';

    # several values: the first that names a usable member wins
    ($r, $st) = outcome(dated($b2, $now - 100, $now - 70, $bal) . '; ROUTEID=' . dated($id{backend1}, $now - 5, $now - 5, $bal));
    is backend($r) . " $st", 'backend1 valid', 'an expired value before a valid one: the valid one counts';
}

# ---- Bare IDs issued before expiry was on ---------------------------------------
# Only while a migration is declared (AffinityCookieUpgrade On).
{
    my $M = '/migrating/hello.txt';
    my $now = int(time);
    my ($r, $tag) = get($M, $id{backend1});
    is backend($r) . ' ' . scalar(affinity_cookies($r)), 'backend1 1',
       'AffinityCookieUpgrade On: a bare ID is honoured and re-issued';
    my @d = parse_dated(cookie_value($r));
    ok @d && $d[0] eq $id{backend1} && abs($d[1] - $now) <= 2 && $d[1] == $d[2]
       && cookie_value($r) eq dated($d[0], $d[1], $d[2], 'balancer://migrating'),
       'with dates, first issued now';
    like line_for($M, $tag), qr/status=valid route=$id{backend1} changed=- /,
       'status valid, BALANCER_ROUTE_CHANGED unset';
    ($r) = get($M, cookie_value($r));
    is backend($r) . ' ' . scalar(affinity_cookies($r)), 'backend1 0',
       'the upgraded cookie then needs nothing more';

    my $O = '/migrating-off/hello.txt';
    ($r, $tag) = get($O, $id{backend1});
    @d = parse_dated(cookie_value($r));
    ok line_for($O, $tag) =~ /status=expired / && @d && abs($d[1] - $now) <= 2,
       'AffinityCookieUpgrade Off in an inner <Location> wins: expired, new dated cookie'
        or diag line_for($O, $tag);
}

# ---- Real time: idle expiry, refresh, an active client ends at MaxLife ---------
# "brief": MaxIdle 4, MaxLife 7.  Dates are whole seconds: a cookie issued at
# FIRST is expired once the server's clock reads FIRST + 8.  The loop judges
# each answer by its Set-Cookie alone (no waiting for log lines between
# requests, so the client stays active even on a loaded machine); the
# statuses are read from the access log afterwards.
{
    my $B = '/brief/hello.txt';
    my ($r) = get($B);
    my $v = cookie_value($r);
    my $tag;
    # verified once (so cached), then idle: the dates still count
    ($r, $tag) = get($B, $v);
    like line_for($B, $tag), qr/status=valid /, 'sent back at once: valid';
    sleep 5.2;
    ($r, $tag) = get($B, $v);
    like line_for($B, $tag), qr/status=expired /, 'idle for longer than MaxIdle (4 s): expired';

    # an active client: a request every 0.5 s, keeping each Set-Cookie
    ($r) = get($B);
    $v = cookie_value($r);
    my ($cid, $first) = parse_dated($v);
    my $start = time;
    my ($sets, $moved, @valid_tags, $end_tag, $end_done, $last_sent) = (1, 0);
    while (time - $start < 12) {
        sleep 0.5;
        my $sent = time;
        ($r, $tag) = get($B, $v);
        my $done = time;
        my $nv = cookie_value($r);
        my @d = parse_dated($nv);
        if (@d && $d[1] != $first) {        # a new session
            ($end_tag, $end_done) = ($tag, $done);
            last;
        }
        push @valid_tags, $tag;
        $last_sent = $sent;
        if ($nv) {
            $sets++;
            $moved++ if !@d || $d[0] ne $cid || backend($r) eq '';
            $v = $nv;
        }
    }
    my @not_valid = grep { line_for($B, $_) !~ /status=valid / } @valid_tags;
    ok !@not_valid && @valid_tags >= 8, 'an active client is kept (' . scalar(@valid_tags) . ' requests)'
        or diag scalar(@not_valid) . ' not valid, e.g. ' . line_for($B, $not_valid[0] // '');
    like $end_tag ? line_for($B, $end_tag) : '(never ended)', qr/status=expired /,
       'but expires';
    ok $end_done && $end_done >= $first + 7.99 && $last_sent < $first + 8,
       'at MaxLife: kept while the clock read FIRST + 7 or less, expired after'
        or diag sprintf 'first %d, last kept request sent at +%.2f, expired at +%.2f',
                        $first, ($last_sent // 0) - $first, ($end_done // 0) - $first;
    is $moved, 0, 'no refresh moved the first date or the member';
    my $bound = 1 + 4 * (time - $start) / 4;
    ok $sets >= 3 && $sets <= $bound + 1, "refreshes bounded: $sets Set-Cookie (at most about $bound)";
}

# ---- Two front ends, one salt -----------------------------------------------------
# stopped at the end of the block, or here if the test dies first
our $stop_second;
END { system($stop_second) if $stop_second }
SKIP: {
    my $httpd = Apache::Test::vars('httpd');
    my $apxs = Apache::Test::vars('apxs');
    chomp(my $libexec = `$apxs -q LIBEXECDIR`);
    my $module = File::Spec->rel2abs(Apache::Test::vars('serverroot') . '/../.libs/mod_affinity.so');
    my $dir = Apache::Test::vars('t_logs') . '/frontend2';
    mkdir $dir;
    my $port = IO::Socket::INET->new(LocalAddr => '127.0.0.1', Listen => 1)->sockport;
    my $conf = "$dir/httpd.conf";
    my $write_conf = sub {
    my ($salt) = @_;
    open my $fh, '>', $conf or die "$conf: $!";
    print $fh join "\n",
        "ServerRoot \"$dir\"", 'ServerName localhost', "Listen 127.0.0.1:$port",
        "PidFile $dir/httpd.pid", "ErrorLog $dir/error_log", 'LogLevel warn',
        "LoadModule mpm_prefork_module $libexec/mod_mpm_prefork.so",
        (map { "LoadModule ${_}_module $libexec/mod_$_.so" }
             qw(authz_core headers proxy proxy_http proxy_balancer slotmem_shm)),
        "LoadModule affinity_module $module",
        'StartServers 1', 'MinSpareServers 1', 'MaxSpareServers 2',
        'LogFormat "%U%q status=%{AFFINITY_STATUS}e" st', "CustomLog $dir/access_log st",
        '<Proxy "balancer://dated">',
        '    BalancerMember "http://127.0.0.1:' . backend_port('backend1') . '"',
        '    BalancerMember "http://127.0.0.1:' . backend_port('backend2') . '" route=blue',
        '    ProxySet lbmethod=affinity',
        "    AffinitySalt $salt", '    AffinityCookieMaxIdle 60', '    AffinityCookieMaxLife 120',
        '</Proxy>',
        'ProxyPass "/dated/" "balancer://dated/"', '';
    close $fh;
    };
    $write_conf->($SALT);
    my $out = `$httpd -f $conf -k start 2>&1`;
    $stop_second = "$httpd -f $conf -k stop >/dev/null 2>&1";
    my $up = wait_until(10, sub { IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port") });
    ok $up, 'a second front end (own httpd, same salt and members) started' or diag $out;
    skip 'no second front end', 9 unless $up;

    my $ua = Apache::TestRequest::user_agent();
    my $get2 = sub {
        my ($cookie, $tag) = @_;
        return $ua->get("http://127.0.0.1:$port$D?$tag", defined $cookie ? (Cookie => "ROUTEID=$cookie") : ());
    };
    my $st2 = sub {
        my ($tag) = @_;
        my $line = '';
        wait_until(5, sub {
            open my $l, '<', "$dir/access_log" or return 0;
            ($line) = grep { /\Q$tag\E / } <$l>;
            $line;
        });
        my ($s) = ($line // '') =~ /status=(\S+)/;
        return $s // '?';
    };

    # A's cookie on B
    my ($r, $tag) = get($D);
    my $va = cookie_value($r);
    my $ba = backend($r);
    my $rb = $get2->($va, "fromA$run");
    is backend($rb) . ' ' . scalar(affinity_cookies($rb)), "$ba 0",
       "front end A's cookie is honoured by front end B (same member, no Set-Cookie)";
    is $st2->("fromA$run"), 'valid', 'as valid';

    # B's new cookie on A
    $rb = $get2->(undef, "newB$run");
    my $vb = cookie_value($rb);
    ok parse_dated($vb), 'B issues a dated value';
    ($r, $tag) = get($D, $vb);
    is backend($r) . ' ' . scalar(affinity_cookies($r)), backend($rb) . ' 0',
       "front end B's cookie is honoured by front end A";
    like line_for($D, $tag), qr/status=valid /, 'as valid';

    # B's refresh verifies on A too
    my $now = int(time);
    $rb = $get2->(dated($id{backend2}, $now - 50, $now - 40, $bal), "refreshB$run");
    my ($r3) = get($D, cookie_value($rb) // 'none');
    is backend($r3) . ' ' . scalar(affinity_cookies($r3)), 'backend2 0',
       "B's refreshed cookie is fresh on A";

    # B has verified $va (its cache of verified values holds it); a graceful
    # restart with another salt: the old value is not accepted any more
    $get2->($va, "again$run-$_") for 1 .. 3;
    is $st2->("again$run-3"), 'valid', "A's value, sent again to B: valid";
    $write_conf->('pepper2');
    system("$httpd -f $conf -k graceful >/dev/null 2>&1");
    # the IDs are made with the salt too
    my $other = dated(route_id('pepper2', 'blue'), $now - 5, $now - 5, $bal, 'pepper2');
    my $switched = wait_until(10, sub {
        my $x = $get2->($other, "probe$run-" . ++$n);
        $x->code == 200 && !affinity_cookies($x);
    });
    ok $switched, 'B restarted gracefully with another salt (its values verify)';
    $rb = $get2->($va, "aftersalt$run");
    is $st2->("aftersalt$run") . ' ' . scalar(affinity_cookies($rb)), 'invalid 1',
       'a value verified under the old salt is invalid after the salt change: new session';

    system($stop_second);
    undef $stop_second;
    wait_until(10, sub { !IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port") });
}

# ---- Stock stickiness values -------------------------------------------------------
my $S = '/stock/hello.txt';
my %sid = (r1 => route_id('', 'r1'), r2 => route_id('', 'r2'), r9 => route_id('', 'r9'));
{
    my ($r, $tag) = get($S, '.r2');
    is backend($r) . ' ' . (cookie_value($r) // 'none'), "backend2 $sid{r2}",
       'a stock ".ROUTE" value goes to that member and is re-issued as its ID';
    like line_for($S, $tag), qr/ 200 status=legacy route=$sid{r2} changed=- /,
       'logged as status legacy, BALANCER_ROUTE_CHANGED unset';
    ($r) = get($S, 'a1b2c3.r1');
    is backend($r) . ' ' . (cookie_value($r) // 'none'), "backend1 $sid{r1}",
       'a stock "SESSION.ROUTE" value too';
    ($r, $tag) = get($S, '.nosuch');
    like line_for($S, $tag), qr/ 200 status=invalid /, 'a route no member has: invalid, new session';
    ($r, $tag) = get('/nostock/hello.txt', '.r2');
    like line_for('/nostock/hello.txt', $tag), qr/ 200 status=invalid /,
       'without AffinityLegacyRoutes a stock value is unknown';

    ($r, $tag) = get($S, dated($sid{r1}, int(time) - 10, int(time) - 10, 'balancer://stock'));
    is backend($r) . ' ' . (cookie_value($r) // 'none'), "backend1 $sid{r1}",
       'with expiry off, a dated value still names its member and goes back to the bare ID';

    # expiry on and no migration declared: a stock value has no dates
    my $X = '/legacystrict/hello.txt';
    for my $v ('.r2', 'a1b2c3.r1') {
        my $now = int(time);
        ($r, $tag) = get($X, $v);
        my @d = parse_dated(cookie_value($r));
        ok line_for($X, $tag) =~ / 200 status=expired .*changed=1 / && @d
           && abs($d[1] - $now) <= 2 && $d[1] == $d[2],
           "AffinityCookieUpgrade Off: stock value $v is expired, new session, new dated cookie"
            or diag line_for($X, $tag);
    }
    ($r, $tag) = get($X, '.nosuch');
    like line_for($X, $tag), qr/ 200 status=invalid /, 'a stock value naming no route is still invalid';

    my $L = '/legacydated/hello.txt';
    ($r) = get($L, '.r2');
    my @d = parse_dated(cookie_value($r));
    ok backend($r) eq 'backend2' && @d && $d[0] eq route_id($SALT, 'r2')
       && cookie_value($r) eq dated($d[0], $d[1], $d[2], 'balancer://legacydated'),
       'with expiry on, it is re-issued as a dated value';

    # balancer-manager edits
    my $b2 = member_url('backend2');
    bm_post('stock', w => $b2, w_status_N => 1);
    ($r) = get($S, '.r2');
    is backend($r), 'backend2', 'a draining member keeps its stock sessions';
    bm_post('stock', w => $b2, w_status_N => 0, w_status_D => 1);
    ($r, $tag) = get($S, '.r2');
    ok backend($r) ne 'backend2' && line_for($S, $tag) =~ /status=down .*changed=1/,
       'a disabled member moves them (status down)';
    bm_post('stock', w => $b2, w_status_D => 0);

    bm_post('stock', w => $b2, w_wr => 'r9');
    ($r, $tag) = get($S, '.r9');
    is backend($r) . ' ' . (cookie_value($r) // 'none'), "backend2 $sid{r9}",
       'a route edited in balancer-manager counts at once';
    ($r, $tag) = get($S, '.r2');
    like line_for($S, $tag), qr/status=invalid /, 'and the old route no longer does';
    bm_post('stock', w => $b2, w_wr => 'r2');
    ($r) = get($S, '.r2');
    is backend($r), 'backend2', 'restored';
}

# ---- Expiry with the salt turned off where no startup check can see it ----------
{
    my $N = '/nosalt/hello.txt';
    my $now = int(time);
    my $nid = route_id('', 'blue');
    # signed with the public key SHA1("mod_affinity cookie mac:"), FIRST = 1
    my ($r, $tag) = get($N, dated($nid, 1, $now, 'balancer://twin', ''));
    like line_for($N, $tag), qr/ 200 status=invalid /,
       'a forged FIRST=1 value signed without a salt is not valid';
    ok wait_until(5, sub { error_log_text() =~ /AFF0067: balancer:\/\/twin: AffinityCookieMaxIdle\/MaxLife in force for \/nosalt\/hello.txt without a salt/ }),
       'and the error log says why (AFF0067)';
}

# ---- Startup checks (httpd -t) ---------------------------------------------------
{
    my $httpd = Apache::Test::vars('httpd');
    my $apxs = Apache::Test::vars('apxs');
    chomp(my $libexec = `$apxs -q LIBEXECDIR`);
    my $module = File::Spec->rel2abs(Apache::Test::vars('serverroot') . '/../.libs/mod_affinity.so');
    my $dir = Apache::Test::vars('t_logs') . '/lifetime-config';
    mkdir $dir;
    my $i = 0;
    my $check = sub {
        my @lines = @_;
        my $conf = "$dir/c" . $i++ . '.conf';
        open my $fh, '>', $conf or die "$conf: $!";
        print $fh join "\n", "ServerRoot \"$dir\"", 'ServerName localhost', "ErrorLog \"$dir/error_log\"",
            "LoadModule mpm_prefork_module $libexec/mod_mpm_prefork.so",
            "LoadModule proxy_module $libexec/mod_proxy.so",
            "LoadModule affinity_module $module", @lines, '';
        close $fh;
        my $out = `$httpd -t -f $conf 2>&1`;
        return ($? >> 8, $out, $conf);
    };
    my ($rc, $out) = $check->('<Proxy balancer://x>', 'AffinityCookieMaxIdle 60', '</Proxy>');
    ok $rc != 0 && $out =~ /AFF0060: AffinityCookieMaxIdle \(.*line 8\) needs a salt/,
       'MaxIdle without any salt stops startup, naming the directive and line' or diag $out;
    ($rc, $out) = $check->('AffinitySalt pepper', '<Proxy balancer://x>', 'AffinitySalt none',
                           'AffinityCookieMaxLife 60', '</Proxy>');
    ok $rc != 0 && $out =~ /AFF0060: AffinityCookieMaxLife .* needs a salt/,
       'MaxLife where AffinitySalt none applies stops startup' or diag $out;
    ($rc, $out) = $check->('<Proxy balancer://x>', 'AffinityCookieMaxIdle 60', '</Proxy>',
                           'AffinitySalt pepper');
    ok $rc == 0 && $out =~ /Syntax OK/, 'a server-level salt, even given later, is enough' or diag $out;
    ($rc, $out) = $check->('AffinitySalt pepper', 'Listen 127.0.0.1:9',
                           '<VirtualHost 127.0.0.1:9>', '<Proxy balancer://x>',
                           'AffinityCookieMaxIdle 60', '</Proxy>', '</VirtualHost>');
    ok $rc == 0, "in a virtual host, the main server's salt applies" or diag $out;
    ($rc, $out) = $check->('AffinityCookieMaxIdle 0', 'AffinityCookieMaxLife 0');
    ok $rc == 0, 'lifetimes of 0 (off) need no salt' or diag $out;
    ($rc, $out) = $check->('AffinitySalt pepper', 'AffinityCookieMaxIdle -5');
    ok $rc != 0 && $out =~ /AffinityCookieMaxIdle: "-5" is not a number of seconds/,
       'a negative lifetime is refused, naming the directive' or diag $out;
    ($rc, $out) = $check->('AffinitySalt pepper', 'AffinityCookieMaxLife 30m');
    ok $rc != 0 && $out =~ /AffinityCookieMaxLife: "30m" is not a number of seconds/,
       'so is a lifetime with a unit' or diag $out;
    # issue 19: the salt turned off in an inner scope, after merging
    my $conf;
    my $refused = sub {
        my ($what, $life, $where, @lines) = @_;
        ($rc, $out, $conf) = $check->(@lines);
        my ($l1, $l2) = $out =~ /AFF0060: $life \(\Q$conf\E line (\d+)\) needs a salt, but AffinitySalt none \(\Q$conf\E line (\d+)\) turns it off for \Q$where\E/;
        ok $rc != 0 && $out !~ /Syntax OK/ && $l1 && $l2
           && $lines[$l1 - 7] =~ /^\s*$life / && $lines[$l2 - 7] =~ /^\s*AffinitySalt none/,
           "$what: startup refused, naming both directives' file and line" or diag $out;
    };
    $refused->('AffinitySalt none in a <Proxy> under server-level expiry', 'AffinityCookieMaxIdle', '<Proxy balancer://x>',
               'AffinitySalt s3cret', 'AffinityCookieMaxIdle 1800', '<Proxy balancer://x>', 'AffinitySalt none', '</Proxy>');
    $refused->('in a <Location>', 'AffinityCookieMaxLife', '<Location /a>',
               'AffinitySalt s3cret', 'AffinityCookieMaxLife 3600', '<Location /a>', '    AffinitySalt none', '</Location>');
    $refused->('in a <VirtualHost>', 'AffinityCookieMaxIdle', 'the server\'s own settings in virtual host',
               'AffinitySalt s3cret', 'AffinityCookieMaxIdle 1800', 'Listen 127.0.0.1:9',
               '<VirtualHost 127.0.0.1:9>', 'AffinitySalt none', '</VirtualHost>');
    $refused->("in a <VirtualHost>, over the main server's <Proxy>", 'AffinityCookieMaxIdle', '<Proxy balancer://x>',
               'AffinitySalt s3cret', '<Proxy balancer://x>', 'AffinityCookieMaxIdle 1800', '</Proxy>',
               'Listen 127.0.0.1:9', '<VirtualHost 127.0.0.1:9>', 'AffinitySalt none', '</VirtualHost>');
    $refused->('in <Files> inside <Directory>', 'AffinityCookieMaxIdle', '<Files x.php>',
               'AffinitySalt s3cret', 'AffinityCookieMaxIdle 1800', '<Directory /srv>', '<Files x.php>',
               'AffinitySalt none', '</Files>', '</Directory>');
    $refused->('in an <If>', 'AffinityCookieMaxIdle', 'an <If> section',
               'AffinitySalt s3cret', 'AffinityCookieMaxIdle 1800', '<If "-n %{HTTP:X}">', 'AffinitySalt none', '</If>');
    my @bal = ("LoadModule proxy_balancer_module $libexec/mod_proxy_balancer.so",
               "LoadModule slotmem_shm_module $libexec/mod_slotmem_shm.so");
    $refused->('a <Location> over the ProxyPass of a <Proxy> with expiry', 'AffinityCookieMaxLife', 'ProxyPass /a balancer://b',
               'AffinitySalt s3cret', '<Location /a>', 'AffinitySalt none', '</Location>',
               '<Proxy balancer://b>', 'BalancerMember http://127.0.0.1:9', 'ProxySet lbmethod=affinity',
               'AffinityCookieMaxLife 600', '</Proxy>', 'ProxyPass /a balancer://b', @bal);
    # SetHandler "proxy:balancer://NAME": no proxy walk, the balancer's <Proxy>
    # sections are merged over the request's own settings at request time
    my @shb = ('<Proxy balancer://x>', 'BalancerMember http://127.0.0.1:9', 'ProxySet lbmethod=affinity');
    my $sethandler_line = sub {
        my ($want) = @_;
        my ($l) = $out =~ /with SetHandler "proxy:balancer:\/\/x" \(\Q$conf\E line (\d+)\)/;
        ok $l && $l == $want, "and the SetHandler's file and line" or diag $out;
    };
    $refused->('SetHandler to a balancer whose <Proxy> has expiry, AffinitySalt none in its <Location>',
               'AffinityCookieMaxIdle', '<Location /app> with SetHandler "proxy:balancer://x"',
               'AffinitySalt s3cret', @shb, 'AffinityCookieMaxIdle 60', '</Proxy>',
               '<Location /app>', '    SetHandler "proxy:balancer://x"', '    AffinitySalt none', '</Location>', @bal);
    $sethandler_line->(14);
    $refused->('the <Proxy> turns the salt off under a SetHandler <Location> with expiry',
               'AffinityCookieMaxLife', '<Location /app> with SetHandler "proxy:balancer://x"',
               'AffinitySalt s3cret', '<Location /app>', '    SetHandler "proxy:balancer://x"',
               '    AffinityCookieMaxLife 600', '</Location>', @shb, 'AffinitySalt none', '</Proxy>', @bal);
    $refused->('SetHandler in a <Directory>, AffinitySalt none in a <Files> inside it',
               'AffinityCookieMaxIdle', '<Files x.php> with SetHandler "proxy:balancer://x"',
               'AffinitySalt s3cret', @shb, 'AffinityCookieMaxIdle 60', '</Proxy>',
               '<Directory /srv>', '    SetHandler "proxy:balancer://x"', '    <Files x.php>',
               '        AffinitySalt none', '    </Files>', '</Directory>', @bal);
    ($rc, $out) = $check->('AffinitySalt s3cret', @shb, 'AffinityCookieMaxIdle 60', '</Proxy>',
                           '<Location /app>', '    SetHandler "proxy:balancer://x"', '</Location>', @bal);
    ok $rc == 0 && $out =~ /Syntax OK/, 'SetHandler to a balancer with expiry and the server\'s salt: fine' or diag $out;
    ($rc, $out) = $check->(@shb, 'AffinitySalt pepper', 'AffinityCookieMaxIdle 60', '</Proxy>',
                           '<Location /app>', '    SetHandler "proxy:balancer://x"', '    AffinitySalt none',
                           '</Location>', @bal);
    ok $rc == 0 && $out =~ /Syntax OK/, 'and so is AffinitySalt none in the <Location> when the <Proxy> has a salt'
        or diag $out;
    ($rc, $out) = $check->('AffinitySalt s3cret', '<Proxy balancer://x>', 'BalancerMember http://127.0.0.1:9',
                           'AffinityCookieMaxIdle 60', '</Proxy>', '<Location /app>',
                           '    SetHandler "proxy:balancer://x"', '    AffinitySalt none', '</Location>', @bal);
    ok $rc == 0 && $out =~ /Syntax OK/, 'or when the balancer is not an affinity one' or diag $out;
    ($rc, $out) = $check->('AffinitySalt s3cret', '<Location /a>', 'AffinitySalt none', '</Location>',
               '<Proxy balancer://b>', 'BalancerMember http://127.0.0.1:9', 'ProxySet lbmethod=affinity',
               'AffinityCookieMaxLife 600', '</Proxy>', 'ProxyPass /b balancer://b', @bal);
    ok $rc == 0 && $out =~ /Syntax OK/, 'AffinitySalt none where no expiry reaches is fine' or diag $out;
    ($rc, $out) = $check->('AffinitySalt s3cret', 'AffinityCookieMaxIdle 1800', '<Proxy balancer://x>',
                           'AffinitySalt none', 'AffinityCookieMaxIdle 0', '</Proxy>');
    ok $rc == 0 && $out =~ /Syntax OK/, 'and so is turning expiry off with it' or diag $out;
    ($rc, $out) = $check->('AffinityCookieUpgrade maybe');
    ok $rc != 0 && $out =~ /AffinityCookieUpgrade must be On or Off/, 'AffinityCookieUpgrade takes On or Off' or diag $out;
    ($rc, $out) = $check->('AffinityLegacyRoutes maybe');
    ok $rc != 0 && $out =~ /AffinityLegacyRoutes must be On or Off/, 'AffinityLegacyRoutes takes On or Off' or diag $out;
}
