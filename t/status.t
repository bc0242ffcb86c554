# The affinity-status handler (t/conf/status.conf.in): exact counters over
# several client processes (and so several children), lookups by cookie
# value and by host in every mode, the JSON schema, the Prometheus text
# checked by promtool, hostile query strings and escaping.  Balancers:
#   stcount   backend1, backend2, backend3 route=st3; salt "st-salt"; growth=2
#   stdomain  domain mode, backend1..3 (backend2 loadfactor=2), file salt
#   stnofail  backend1 route=n1, backend2 route=n2, nofailover=On, random salt
#   stfail    a member refusing connections, then backend1; maxattempts=1
#   stplain   byrequests: never shown
#   stsh      reached only by SetHandler; prefix mode and a salt in its <Proxy>
# Every block restores what it changed through balancer-manager.
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use Apache::TestRequest;
use JSON::PP ();
use File::Temp ();
use POSIX ();
use lib 't/lib';
use AffinityTest;

plan tests => 95;

my $json = JSON::PP->new;
my @statuses = qw(valid new invalid down domain unknown expired legacy drained hash other);
# (loop variables, not $_: Apache::Test's config parser clobbers $_)
my %url;
for my $b (qw(backend1 backend2 backend3 backend4)) {
    $url{$b} = member_url($b);
}
my %backend_of = reverse %url;
my %stid = (
    backend1 => route_id('st-salt', '127.0.0.1:' . backend_port('backend1')),
    backend2 => route_id('st-salt', '127.0.0.1:' . backend_port('backend2')),
    backend3 => route_id('st-salt', 'st3'),
    backend4 => route_id('st-salt', '127.0.0.1:' . backend_port('backend4')),
);

sub status_json {
    my ($query) = @_;
    my $res = GET('/affinity-status?format=json' . ($query // ''));
    die 'status page: ' . $res->status_line . "\n" unless $res->code == 200;
    return $json->decode($res->content);
}

sub balancer_of {
    my ($doc, $name) = @_;
    my ($b) = grep { $_->{name} eq "balancer://$name" } @{ $doc->{balancers} };
    return $b;
}

# { member URL (or '' for unrouted) => { status => n } } of one balancer
sub counts {
    my ($name) = @_;
    my $b = balancer_of(status_json(), $name) or return {};
    my %c;
    for my $m (@{ $b->{members} }) {
        $c{ $m->{name} } = { %{ $m->{requests} } };
    }
    $c{''} = { %{ $b->{unrouted} } };
    return \%c;
}

# after minus before, for the non-zero cells: "member status=n ..."
sub delta_text {
    my ($before, $after) = @_;
    my @cells;
    for my $m (keys %$after) {
        for my $s (@statuses) {
            my $d = ($after->{$m}{$s} // 0) - ($before->{$m}{$s} // 0);
            push @cells, ($backend_of{$m} // ($m eq '' ? 'unrouted' : $m)) . " $s=$d" if $d;
        }
    }
    return join ', ', sort @cells;
}

sub expected_text {
    my ($tally) = @_;
    my @cells;
    for my $key (sort keys %$tally) {
        push @cells, "$key=$tally->{$key}";
    }
    return join ', ', @cells;
}

# Counters are bumped when the request is logged, just after the response:
# wait (bounded) until they show what was sent, then check they stay there.
sub counts_become {
    my ($name, $before, $tally, $what) = @_;
    my $want = expected_text($tally);
    my $got;
    wait_until(10, sub { ($got = delta_text($before, counts($name))) eq $want });
    select(undef, undef, undef, 0.3);
    $got = delta_text($before, counts($name));
    is $got, $want, $what;
}

# One request; returns "BACKEND" (or "unrouted" for a 5xx by httpd itself)
sub one {
    my ($path, %headers) = @_;
    my $res = GET($path, %headers);
    return backend($res) || 'unrouted';
}

# Runs $n requests in each of $procs client processes at once and adds
# "BACKEND STATUS" => count to $tally; the request kinds come from $plan,
# a list of [path, status, headers...].
sub in_parallel {
    my ($procs, $n, $tally, @plan) = @_;
    my @pipes;
    for my $p (1 .. $procs) {
        pipe(my $r, my $w) or die "pipe: $!";
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            close $r;
            Apache::TestRequest::user_agent(reset => 1, keep_alive => 0);
            for my $i (1 .. $n) {
                for my $kind (@plan) {
                    my ($path, $status, @headers) = @$kind;
                    print $w one($path, @headers), " $status\n";
                }
            }
            close $w;
            POSIX::_exit(0);
        }
        close $w;
        push @pipes, [$pid, $r];
    }
    for my $p (@pipes) {
        my ($pid, $r) = @$p;
        while (my $line = <$r>) {
            chomp $line;
            $tally->{$line}++;
        }
        waitpid $pid, 0;
    }
}

sub edit {
    my ($balancer, $member, %params) = @_;
    bm_post($balancer, w => $url{$member} // $member, %params);
}

# ---- an empty-looking start: every affinity balancer, no other -------------------
{
    my $doc = status_json();
    is $doc->{version}, 1, 'JSON: version 1';
    my @names = map { $_->{name} } @{ $doc->{balancers} };
    ok((grep { $_ eq 'balancer://stcount' } @names) && (grep { $_ eq 'balancer://app' } @names),
       'every affinity balancer is listed');
    ok !(grep { $_ eq 'balancer://stplain' } @names), 'a byrequests balancer is not';
}

# ---- counting: new, valid, invalid over several client processes ------------------
my $before = counts('stcount');
my %tally;
in_parallel(4, 6, \%tally,
    ['/stcount/hello.txt', 'new'],
    ['/stcount/hello.txt', 'valid', Cookie => "STC=$stid{backend1}"],
    ['/stcount/hello.txt', 'valid', Cookie => "STC=$stid{backend3}"],
    ['/stcount/hello.txt', 'invalid', Cookie => 'STC=garbage'],
    ['/stcount/hello.txt', 'invalid', Cookie => 'STC=' . ('0' x 40)]);
is((grep { /^unrouted/ } keys %tally), 0, 'every request was served');
counts_become('stcount', $before, \%tally,
              'counters equal the requests made: member and status, exactly');
{
    my %pids;
    for my $line (log_lines('status_pid_log')) {
        $pids{$1}++ if $line =~ /^(\d+) \/stcount\//;
    }
    my $mpm = '';
    for my $line (log_lines('../conf/httpd.conf')) {
        $mpm = $1 if $line =~ /LoadModule mpm_(\w+)_module/;
    }
    if ($mpm eq 'prefork') {
        ok keys(%pids) >= 2, 'the requests were served by several children'
            or diag join ' ', keys %pids;
    }
    else {
        ok keys(%pids) >= 1, "served by " . keys(%pids) . " child(ren) ($mpm)";
    }
}

# ---- down: the session's member disabled, then back ------------------------------
{
    edit('stcount', 'backend3', w_status_D => 1);
    my $b0 = counts('stcount');
    my %t;
    in_parallel(3, 5, \%t, ['/stcount/hello.txt', 'down', Cookie => "STC=$stid{backend3}"]);
    ok !$t{'backend3 down'}, 'a disabled member serves none of its sessions';
    counts_become('stcount', $b0, \%t, 'down: counted for the member that took the session');

    my $doc = status_json("&id=$stid{backend3}");
    my ($m) = @{ $doc->{lookup}{id}{matches} };
    is "$m->{member} $m->{usable} $m->{honoured}",
       "$url{backend3} 0 0", '?id= of the disabled member: not usable, not honoured';
    like $m->{outcome}, qr/moves to a member chosen as for a new session/, 'and says what happens';
    edit('stcount', 'backend3', w_status_D => 0);
    $doc = status_json("&id=$stid{backend3}");
    ($m) = @{ $doc->{lookup}{id}{matches} };
    ok $m->{honoured}, 'enabled again: honoured';
}

# ---- unrouted: nofailover and the session's member disabled -------------------------
{
    my $n1 = route_id(undef, 'n1');   # random salt: learn the ID from the page
    my ($m1) = grep { $_->{route} eq 'n1' } @{ balancer_of(status_json(), 'stnofail')->{members} };
    my $id = $m1->{route_id};
    isnt $id, $n1, 'random salt: the ID is not sha1(route)';
    my $res = GET('/stnofail/hello.txt', Cookie => "ROUTEID=$id");
    is backend($res), 'backend1', 'the ID computed by the page is the one the module honours';
    edit('stnofail', 'backend1', w_status_D => 1);
    my $b0 = counts('stnofail');
    my %t;
    in_parallel(2, 3, \%t, ['/stnofail/hello.txt', 'down', Cookie => "ROUTEID=$id"]);
    is $t{'unrouted down'}, 6, 'nofailover: 503 for every request';
    counts_become('stnofail', $b0, { 'unrouted down' => 6 },
                  'counted as unrouted, status down');
    my $doc = status_json("&id=$id");
    like $doc->{lookup}{id}{matches}[0]{outcome}, qr/nofailover is On: the request gets 503/,
         '?id= says the request gets 503';
    edit('stnofail', 'backend1', w_status_D => 0);
}

# ---- failover: counted once, for the member that finally served --------------------
{
    my $b0 = counts('stfail');
    my %t;
    in_parallel(2, 5, \%t, ['/stfail/hello.txt', 'new']);
    is_deeply [sort keys %t], ['backend1 new'], 'every request served by backend1';
    counts_become('stfail', $b0, \%t, 'failover: one count per request, none for the refusing member');
}

# ---- domain mode: counts and ?host= ---------------------------------------------------
{
    my $b0 = counts('stdomain');
    my %t;
    my @hosts = map { "site$_.example" } 1 .. 12;
    in_parallel(2, 2, \%t, map { ['/stdomain/hello.txt', 'domain', Host => $_] } @hosts);
    counts_become('stdomain', $b0, \%t, 'domain: counted per member');

    my $check_hosts = sub {
        my ($what) = @_;
        my @bad;
        for my $h (@hosts, 'Mixed.Example.', 'with.port.example:8080') {
            my $served = one('/stdomain/hello.txt', Host => $h);
            my $doc = status_json('&host=' . $h);
            my ($l) = grep { $_->{balancer} eq 'balancer://stdomain' }
                      @{ $doc->{lookup}{host}{balancers} };
            my $said = $l && $l->{member} ? $backend_of{ $l->{member} } : 'none';
            push @bad, "$h: served by $served, page says $said" if $said ne $served;
        }
        is "@bad", '', $what;
    };
    $check_hosts->('?host= names the member each host is sent to');
    my $doc = status_json('&host=site1.example');
    my ($l) = grep { $_->{balancer} eq 'balancer://stdomain' } @{ $doc->{lookup}{host}{balancers} };
    my $gone = $backend_of{ $l->{member} };
    edit('stdomain', $gone, w_status_D => 1);
    $doc = status_json('&host=site1.example');
    ($l) = grep { $_->{balancer} eq 'balancer://stdomain' } @{ $doc->{lookup}{host}{balancers} };
    isnt $backend_of{ $l->{member} }, $gone, 'after a balancer-manager disable, ?host= moves';
    $check_hosts->('and still names the member each host is sent to');
    edit('stdomain', $gone, w_status_D => 0);

    my $dm = balancer_of(status_json(), 'stdomain');
    is "$dm->{mode} $dm->{salt}", 'domain file', 'domain balancer: mode and salt kind';
    my $any = $dm->{members}[0]{route_id};
    my ($dmatch) = grep { $_->{balancer} eq 'balancer://stdomain' }
                   @{ status_json("&id=$any")->{lookup}{id}{matches} };
    like $dmatch->{outcome}, qr/domain mode/, '?id= of a domain-mode member: the cookie is not used';
}

# ---- ?id= forms, and after a route edit ----------------------------------------------
{
    my $id = $stid{backend2};
    # what the page says against what a request carrying the value gets
    for my $case (["$id", 'id', 'honoured', 'valid'], ["STC=$id", 'id', 'honoured', 'valid'],
                  ["\"$id\"", 'id', 'honoured', 'valid'],
                  ["$id.1700000000.1800000000.abcdef", 'id+suffix', 'not', 'invalid'],
                  ["APPSESS=$id~s3ssion-value", 'prefixed', 'not', 'new'],
                  ["$id~dmFsdWU=", 'prefixed', 'not', 'invalid']) {
        my ($value, $form, $honoured, $status) = @$case;
        my $doc = status_json('&id=' . uri_escape($value));
        my $l = $doc->{lookup}{id};
        my ($m) = grep { $_->{balancer} eq 'balancer://stcount' } @{ $l->{matches} };
        my $cookie = $value =~ /^[A-Za-z]+=/ ? $value : "STC=$value";
        is join(' ', $l->{route_id} // '-', $l->{form} // '-', $m ? $m->{member} : '-',
                $m ? ($m->{honoured} ? 'honoured' : 'not') : '-',
                request_status('/stcount/hello.txt', Cookie => $cookie)),
           "$id $form $url{backend2} $honoured $status", "?id=$value: as a request gets it";
    }
    my $l = status_json('&id=' . uc $id)->{lookup}{id};
    like $l->{matches}[0]{outcome}, qr/only\s+lowercase.*gets invalid/,
         'uppercase ID: found, but not honoured';
    is request_status('/stcount/hello.txt', Cookie => 'STC=' . uc $id), 'invalid',
       'as a request carrying it gets';
    $l = status_json('&id=nothex')->{lookup}{id};
    like $l->{error}, qr/route ID/, 'not an ID: says so';
    $l = status_json('&id=' . ('e' x 40))->{lookup}{id};
    is scalar @{ $l->{matches} }, 0, 'an ID of no member: no match';

    my $b0 = counts('stcount');
    edit('stcount', 'backend1', w_wr => 'edited');
    my $new = route_id('st-salt', 'edited');
    $l = status_json("&id=$stid{backend1}")->{lookup}{id};
    ok !grep({ $_->{balancer} eq 'balancer://stcount' } @{ $l->{matches} }),
       'route edited: the old ID names no member of stcount';
    $l = status_json("&id=$new")->{lookup}{id};
    is join(' ', map { $_->{member} } @{ $l->{matches} }), $url{backend1},
       'the new ID names the same member';
    is delta_text($b0, counts('stcount')), '', 'its counters stay with it';
    is one('/stcount/hello.txt', Cookie => "STC=$new"), 'backend1', 'and the module agrees';
    edit('stcount', 'backend1', w_wr => '');
    $l = status_json("&id=$stid{backend1}")->{lookup}{id};
    is scalar @{ $l->{matches} }, 1, 'route restored: the old ID is back';
}

# ---- a balancer reached only by SetHandler: what its requests get -------------------
{
    my $sh = balancer_of(status_json(), 'stsh');
    is join(' ', $sh->{mode}, $sh->{cookie}{name}, $sh->{salt}), 'prefix JSESSIONID string',
       'SetHandler only: the page shows the mode and salt kind of its <Proxy> section';
    my $res = GET('/stsh/hello.txt', 'X-Set1' => 'JSESSIONID=sh-session-1; Path=/');
    my %sid = (pfx1 => route_id('sh-salt', 's1'), pfx2 => route_id('sh-salt', 's2'));
    my $member = backend($res);
    my ($value) = grep { /^JSESSIONID=/ } $res->header('Set-Cookie');
    ($value) = ($value // '') =~ /^([^;]*)/;
    is $value, 'JSESSIONID=' . ($sid{$member} // 'none') . '~sh-session-1',
       'and a request through SetHandler gets them: prefix mode, the salted ID' or diag $res->as_string;
    my $l = status_json('&id=' . uri_escape($value))->{lookup}{id};
    my ($m) = grep { $_->{balancer} eq 'balancer://stsh' } @{ $l->{matches} };
    my ($want) = grep { $_->{route} eq ($member eq 'pfx1' ? 's1' : 's2') } @{ $sh->{members} };
    ok $m && $want && $m->{member} eq $want->{name} && $m->{honoured},
       '?id= of that value: honoured, on the member that set it' or diag $json->encode($l);
    is one('/stsh/hello.txt', Cookie => $value), $member, 'and the module sends it there';
}

# ---- prefix mode (t/conf/prefix.conf.in: balancer://pfx, JSESSIONID) -------------------
{
    my $pfx = balancer_of(status_json(), 'pfx');
    is join(' ', $pfx->{mode}, $pfx->{cookie}{name}, $pfx->{cookie}{attributes} // 'null'),
       'prefix JSESSIONID null', 'prefix mode: mode and the application cookie';
    my ($p2) = grep { $_->{route} eq 'p2' } @{ $pfx->{members} };
    my $value = "JSESSIONID=$p2->{route_id}~app-session-1";
    my $l = status_json('&id=' . uri_escape($value))->{lookup}{id};
    my ($m) = grep { $_->{balancer} eq 'balancer://pfx' } @{ $l->{matches} };
    is join(' ', $l->{form}, $l->{suffix}, $m ? $m->{member} : '-', $m && $m->{honoured} ? 1 : 0),
       "prefixed ~app-session-1 $p2->{name} 1", '?id= of a prefixed application cookie';
    is one('/pfx/', Cookie => $value), 'pfx2', 'and the module sends it there';
    # a bare ID on the application's cookie carries no prefix: not honoured
    $value = "JSESSIONID=$p2->{route_id}";
    $l = status_json('&id=' . uri_escape($value))->{lookup}{id};
    ($m) = grep { $_->{balancer} eq 'balancer://pfx' } @{ $l->{matches} };
    is join(' ', $m && $m->{honoured} ? 1 : 0, $m ? $m->{outcome} =~ /gets invalid$/ : '-',
            request_status('/pfx/', Cookie => $value)),
       '0 1 invalid', 'prefix mode, a bare ID: not honoured, invalid, as a request gets it';
}

# ---- learn mode: a route ID is not what requests carry ----------------------------------
{
    my $lrn = balancer_of(status_json(), 'lrn');
    my ($l1) = grep { $_->{route} eq 'l1' } @{ $lrn->{members} };
    my $value = "SID=$l1->{route_id}";
    my $l = status_json('&id=' . uri_escape($value))->{lookup}{id};
    my ($m) = grep { $_->{balancer} eq 'balancer://lrn' } @{ $l->{matches} };
    is join(' ', $m ? $m->{member} : '-', $m && $m->{honoured} ? 1 : 0,
            request_status("/lrn/?status-t-$$", Cookie => "SID=status-t-$$-unused")),
       "$l1->{name} 0 unknown", 'learn mode: an ID is not honoured; a request with a value no member issued is unknown';
    like $m->{outcome}, qr/learn mode requests carry no route ID: the value of cookie SID is looked up in the store.*gets unknown$/,
         'and the page says what carries the session';
}

# ---- a Route Redirect ------------------------------------------------------------------
{
    my $id = route_id('', 'r1');
    edit('redirecting', 'backend1', w_status_D => 1);
    my $l = status_json("&id=$id")->{lookup}{id};
    my ($m) = grep { $_->{balancer} eq 'balancer://redirecting' } @{ $l->{matches} };
    like $m->{outcome}, qr/Route Redirect sends the session to \Q$url{backend2}\E/,
         '?id= of a disabled member with a redirect names the target';
    is one('/redirecting/hello.txt', Cookie => "ROUTEID=$id"), 'backend2', 'as the module does';
    edit('redirecting', 'backend1', w_status_D => 0);
}

# ---- a member added live ---------------------------------------------------------------
{
    bm_post('stcount', b_wyes => 1, b_nwrkr => $url{backend4});
    edit('stcount', 'backend4', w_status_D => 0);
    my $b = balancer_of(status_json(), 'stcount');
    my ($m) = grep { $_->{name} eq $url{backend4} } @{ $b->{members} };
    ok $m, 'the added member is listed';
    is $m && $m->{route_id}, $stid{backend4}, 'with its route ID';
    my $b0 = counts('stcount');
    my %t;
    in_parallel(3, 4, \%t,
        ['/stcount/hello.txt', 'valid', Cookie => "STC=$stid{backend4}"],
        ['/stcount/hello.txt', 'new']);
    ok $t{'backend4 valid'} == 12, 'its cookie sticks';
    counts_become('stcount', $b0, \%t, 'the added member is counted exactly, in every child');
    edit('stcount', 'backend4', w_status_D => 1);
}

# ---- the Prometheus text ----------------------------------------------------------------
{
    my $res = GET('/affinity-status?format=prometheus');
    like $res->header('Content-Type'), qr{^text/plain; version=0\.0\.4}, 'prometheus: content type';
    my $text = $res->content;
    my $doc = status_json();
    my $b = balancer_of($doc, 'stcount');
    my ($m) = grep { $_->{name} eq $url{backend1} } @{ $b->{members} };
    like $text, qr/^affinity_requests_total\{balancer="balancer:\/\/stcount",member="\Q$url{backend1}\E",status="valid"\} $m->{requests}{valid}$/m,
         'affinity_requests_total agrees with the JSON';
    like $text, qr/^affinity_member_info\{balancer="balancer:\/\/stcount",member="\Q$url{backend3}\E",route="st3",route_id="$stid{backend3}"\} 1$/m,
         'affinity_member_info';
    $res = GET('/affinity-status', Accept => 'application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1');
    like $res->content, qr/^# TYPE affinity_requests_total counter$/m,
         "Prometheus' own Accept header gets the metrics";
    like GET('/affinity-status', Accept => 'text/html')->content, qr/<html>/, 'a browser gets HTML';
    promtool_ok($text, 'promtool check metrics passes');
}

# ---- hostile query strings and escaping -------------------------------------------------
{
    edit('stcount', 'backend2', w_wr => '<i>&"x\'');
    my @queries = ('id=<script>alert(1)</script>', 'host=<b>"&amp;', 'id=%zz', 'id=%00abc',
                   'host=%ff%fe%00', 'format=xml', 'format=json&id=%22%5C%0a%01',
                   'id=' . ('a' x 7000), 'host=[::1]:80&host=x', '&&&==&=&id', 'id=%0d%0aX-Injected:%20yes',
                   'format=json&host=' . ('%c3%a9' x 20), 'format=prometheus&id=x',
                   'id=' . ('f' x 40) . '~<b>', 'id=STC=' . ('f' x 40) . '.<img src=x>');
    my @bad;
    for my $q (@queries) {
        my $res = GET("/affinity-status?$q");
        push @bad, "$q: " . $res->code if $res->code >= 500;
        my $body = $res->content;
        push @bad, "$q: raw markup" if $q !~ /prometheus/ && $body =~ /<script>|<b>|<img|<i>&/;
        push @bad, "$q: header injected" if $res->header('X-Injected');
        if ($q =~ /format=json/ && $res->code == 200) {
            push @bad, "$q: invalid JSON" unless eval { $json->decode($body); 1 };
        }
    }
    is "@bad", '', 'hostile query strings: never a 5xx, nothing unescaped, JSON stays JSON';
    is GET('/affinity-status?format=xml')->code, 400, 'an unknown format: 400';
    is GET('/affinity-status?id=%zz')->code, 400, 'a malformed escape: 400';

    my $html = GET_BODY('/affinity-status');
    like $html, qr/<td>&lt;i&gt;&amp;&quot;x'<\/td>/, 'a route with markup is escaped in the HTML';
    my $b = balancer_of(status_json(), 'stcount');
    my ($m) = grep { $_->{name} eq $url{backend2} } @{ $b->{members} };
    is $m->{route}, '<i>&"x\'', 'and exact in the JSON';
    is $m->{route_id}, route_id('st-salt', '<i>&"x\''), 'its ID is computed from it';
    my $text = GET_BODY('/affinity-status?format=prometheus');
    like $text, qr/route="<i>&\\"x'"/, 'and escaped in the Prometheus labels';
    promtool_ok($text, 'promtool accepts it');
    edit('stcount', 'backend2', w_wr => '');

    # bytes that are not UTF-8: a surrogate, an overlong, above U+10FFFF
    my $res = GET('/affinity-status?format=json&id=%ED%A0%80%E0%80%BCx');
    is strict_utf8_json($res->content), 'ok', 'invalid UTF-8 in ?id=: the JSON is strict UTF-8';
    is strict_utf8(GET_BODY('/affinity-status?id=%ED%A0%80%E0%80%BCx%F5%80')), 'ok',
       'and the HTML page too';
    edit('stcount', 'backend2', w_wr => "\xed\xa0\x80\xe0\x80\xbcx\xf4\x90\x80\x80");
    promtool_ok(GET_BODY('/affinity-status?format=prometheus'),
                'a route with invalid UTF-8 set through balancer-manager: promtool accepts the scrape');
    is strict_utf8_json(GET_BODY('/affinity-status?format=json')), 'ok', 'the JSON stays strict UTF-8';
    is strict_utf8(GET_BODY('/affinity-status')), 'ok', 'and the HTML';
    edit('stcount', 'backend2', w_wr => '');
}

# ---- HTML page and the rest of the schema --------------------------------------------------
{
    my $res = GET('/affinity-status');
    is $res->code, 200, 'HTML page';
    like $res->header('Content-Type'), qr{^text/html}, 'as text/html';
    is $res->header('Cache-Control'), 'no-store', 'not cached';
    my $html = $res->content;
    like $html, qr{<h2>balancer://stcount</h2>}, 'one section per balancer';
    like $html, qr{<td>cookie</td><td>STC</td><td>Path=/; HttpOnly</td><td>string</td>},
         'mode, cookie, attributes, salt kind';
    unlike $html, qr/st-salt/, 'the salt is never shown';
    like $html, qr{<td class="n">[0-9]+</td>}, 'numbers right-aligned';
    like $html, qr{<span class="bar" style="width:[0-9]+px"></span>}, 'share bars';
    is POST('/affinity-status')->code, 405, 'POST: 405';

    my $doc = status_json();
    my $ok = 1;
    my @why;
    $ok &&= $doc->{server}{generation} =~ /^\d+$/ or push @why, 'generation';
    $ok &&= JSON::PP::is_bool($doc->{server}{counting}) or push @why, 'counting';
    is_deeply $doc->{statuses}, \@statuses, 'statuses listed in order';
    for my $b (@{ $doc->{balancers} }) {
        for my $k (qw(name mode cookie salt nofailover max_members members unrouted)) {
            push @why, "$b->{name}: $k" unless exists $b->{$k};
        }
        push @why, "$b->{name}: salt $b->{salt}" unless $b->{salt} =~ /^(none|random|file|string)$/;
        for my $m (@{ $b->{members} }) {
            for my $k (qw(name route route_id redirect status usable draining lbfactor lbset
                          requests requests_total sessions_started share bounded)) {
                push @why, "$b->{name} $m->{name}: $k" unless exists $m->{$k};
            }
            push @why, "$m->{name}: route_id" unless $m->{route_id} =~ /^[0-9a-f]{40}$/;
            push @why, "$m->{name}: requests" unless join(',', sort keys %{ $m->{requests} })
                eq join(',', sort @statuses);
        }
    }
    is "@why", '', 'JSON: every balancer and member has the documented fields';
    is JSON::PP::true, balancer_of($doc, 'stnofail')->{nofailover}, 'nofailover shown';
}

# ---- AffinityStatusShowIds prefix: no whole route ID anywhere, lookups work ----------------
{
    is status_json()->{server}{route_ids}, 'full', 'route_ids: full by default';
    my $full = join '|', map { $stid{$_} } qw(backend1 backend2 backend3);
    my $short = substr $stid{backend3}, 0, 8;
    my $html = GET_BODY('/affinity-status-prefix');
    my $doc = $json->decode(GET_BODY('/affinity-status-prefix?format=json'));
    my $text = GET_BODY('/affinity-status-prefix?format=prometheus');
    my $found = join ',', grep { /$full/ } ($html =~ /^.*$/mg), ($text =~ /^.*$/mg),
        GET_BODY('/affinity-status-prefix?format=json');
    is $found, '', 'prefix: no member\'s whole route ID in the page, the JSON or the metrics';
    like $html, qr{<td>st3</td><td><code>\Q$short\E&hellip;</code></td>}, 'the page shows its first 8 digits';
    is $doc->{server}{route_ids}, 'prefix', 'the JSON says route_ids: prefix';
    my ($m) = grep { $_->{route} eq 'st3' } @{ balancer_of($doc, 'stcount')->{members} };
    is $m->{route_id}, $short, 'and gives the 8 digits as route_id';
    like $text, qr/^affinity_member_info\{balancer="balancer:\/\/stcount",member="\Q$url{backend3}\E",route="st3",route_id="$short"\} 1$/m,
         'the metrics label route_id carries the 8 digits';
    promtool_ok($text, 'promtool accepts it');
    # a lookup by a whole cookie value still answers
    my $look = $json->decode(GET_BODY("/affinity-status-prefix?format=json&id=STC=$stid{backend3}"));
    my ($mt) = @{ $look->{lookup}{id}{matches} || [] };
    is join(' ', $mt ? ($mt->{member}, $mt->{honoured} ? 1 : 0) : '-'), "$url{backend3} 1",
       '?id= with the whole value finds its member and says it is honoured';
    like GET_BODY("/affinity-status-prefix?id=$stid{backend3}"), qr/honoured/, 'and so does the page';
}

# AFFINITY_STATUS of one request, from the access log (a tag keeps it apart)
my $request_tag = 0;
sub request_status {
    my ($path, %headers) = @_;
    my $uri = $path . ($path =~ /\?/ ? '&' : '?') . "st-$$-" . ++$request_tag;
    GET($uri, %headers);
    my ($line);
    wait_until(5, sub { ($line) = grep { m{^\Q$uri\E } } log_lines('affinity_log'); $line });
    return $line && $line =~ / status=(\S+)/ ? $1 : '(not logged)';
}

# 'ok', or what python3's strict UTF-8 decoder and JSON parser said
sub strict_utf8_json { return python_check($_[0], 'import json,sys; json.loads(open(sys.argv[1],"rb").read().decode("utf-8","strict"))') }
sub strict_utf8 { return python_check($_[0], 'import sys; open(sys.argv[1],"rb").read().decode("utf-8","strict")') }
sub python_check {
    my ($bytes, $code) = @_;
    my $tmp = File::Temp->new;
    binmode $tmp;
    print $tmp $bytes;
    close $tmp;
    my $out = `python3 -c '$code' $tmp 2>&1`;
    return $? ? (split /\n/, $out)[-1] : 'ok';
}

sub uri_escape {
    my ($s) = @_;
    $s =~ s/([^A-Za-z0-9._~-])/sprintf '%%%02X', ord $1/ge;
    return $s;
}

sub promtool_ok {
    my ($text, $what) = @_;
    my $promtool = `sh -c 'command -v promtool'`;
    chomp $promtool;
  SKIP: {
        skip 'promtool not installed (Debian package prometheus; tools/setup installs it)', 1
            unless $promtool;
        my $tmp = File::Temp->new;
        print $tmp $text;
        close $tmp;
        my $out = `$promtool check metrics < $tmp 2>&1`;
        is $? >> 8, 0, $what or diag $out;
    }
}
