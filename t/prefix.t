# Prefix mode: AffinityMode prefix JSESSIONID (t/conf/prefix.conf.in).
# The members send back as Set-Cookie whatever the request's X-Set1..4 ask
# for, and say which Cookie header they saw (X-Seen-Cookie).
#   pfx    pfx1..3 (routes p1..p3), growth=1: live edits happen here
#   pfxnc  same, AffinityNoCache On
#   pfxnf  nofailover=On, p2 disabled
#   pfxrr  p1 disabled, redirect=p2
# Every block restores what it changed.
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use Apache::TestRequest;
use Digest::SHA qw(sha1_hex);
use File::Spec;
use lib 't/lib';
use AffinityTest;

plan tests => 54;

my %id = map { ("pfx$_" => sha1_hex("p$_")) } 1 .. 3;
my %member_of = reverse %id;
my $FOREIGN = 'f' x 40;                 # well-formed, names no member
my $P = '/pfx/hello.txt';

sub seen { return $_[0]->header('X-Seen-Cookie') // '' }
sub set_cookies { my @c = $_[0]->header('Set-Cookie'); return @c }
sub spread { my %n; $n{ backend($_) }++ for @_; join ', ', map { "$_=$n{$_}" } sort keys %n }

sub run_n {
    my ($n, $path, @headers) = @_;
    return map { fetch($path, @headers) } 1 .. $n;
}

# All responses from one member: its name, or undef.
sub one_member {
    my %b = map { backend($_) => 1 } @_;
    my @b = keys %b;
    return @b == 1 && $b[0] ? $b[0] : undef;
}

# The front end's access-log line of the request tagged $tag (the members
# log theirs under other paths).
sub log_line {
    my ($tag) = @_;
    my $line;
    wait_until(5, sub { ($line) = grep { m{^/pfx\w*/\S*\?\Q$tag\E } } log_lines('affinity_log'); $line });
    return $line // '';
}

sub edit {
    my ($balancer, $member, %params) = @_;
    bm_post($balancer, w => member_url($member), %params);
}

# ---- no cookie: a new session, by lbfactor; no cookie of our own ----------
{
    my @r = run_n(30, "$P?new");
    my %n;
    $n{ backend($_) }++ for @r;
    ok(keys(%n) == 3 && !grep({ $_ != 10 } values %n),
       'no cookie: new sessions spread as byrequests (10 each)') or diag spread(@r);
    ok(!grep({ set_cookies($_) } @r), 'the module sets no cookie of its own');
    my $r = fetch("$P?new-set", 'X-Set1' => 'JSESSIONID=abc; Path=/; HttpOnly');
    my $b = backend($r);
    is_deeply([set_cookies($r)], ["JSESSIONID=$id{$b}~abc; Path=/; HttpOnly"],
              "the application's cookie gets the prefix of the member that served");
    like(log_line('new-set'), qr/ 200 status=new route=$id{$b} changed=1 /,
         'logged: status new, the route, BALANCER_ROUTE_CHANGED');
}

# ---- a prefix naming a usable member --------------------------------------
{
    my @r = run_n(20, "$P?valid", Cookie => "JSESSIONID=$id{pfx2}~abc");
    is(one_member(@r), 'pfx2', 'a prefix naming pfx2: every request on pfx2');
    ok(!grep({ seen($_) ne 'JSESSIONID=abc' } @r),
       'the member sees the value without the prefix') or diag seen($r[0]);
    like(log_line('valid'), qr/ 200 status=valid route=$id{pfx2} changed=- /,
         'logged: status valid, no route change');

    my $r = fetch("$P?valid-set", Cookie => "JSESSIONID=$id{pfx2}~abc",
                  'X-Set1' => 'JSESSIONID=abc; Path=/');
    is_deeply([set_cookies($r)], ["JSESSIONID=$id{pfx2}~abc; Path=/"],
              'the session member re-sets its cookie: same prefix');
    like(log_line('valid-set'), qr/ status=valid route=$id{pfx2} changed=- /,
         'same ID out as in: BALANCER_ROUTE_CHANGED not set');

    my $cookie = "a=1;JSESSIONID=$FOREIGN~zz ,  b=\"$id{pfx1}~x\";JSESSIONID=\"$id{pfx3}~q\"; JSESSIONID=$id{pfx2}~w";
    $r = fetch("$P?order", Cookie => $cookie);
    is(backend($r), 'pfx3', 'the first prefix naming a member wins (an unknown one is passed over)');
    is(seen($r), 'a=1;JSESSIONID=zz ,  b="' . $id{pfx1} . '~x";JSESSIONID="q"; JSESSIONID=w',
       'every JSESSIONID prefix cut (whatever it names, quoted too), other cookies byte for byte');
    $r = fetch("$P?stacked", Cookie => "JSESSIONID=$id{pfx1}~$id{pfx2}~abc");
    ok(backend($r) eq 'pfx1' && seen($r) eq 'JSESSIONID=abc',
       'stacked prefixes (never made here): the first routes, all are cut') or diag seen($r);
    $r = fetch("$P?other", Cookie => "x=$id{pfx1}~a; JSESSIONIDX=$id{pfx1}~b");
    is(seen($r), "x=$id{pfx1}~a; JSESSIONIDX=$id{pfx1}~b", 'other names keep their prefixes');
}

# ---- what the member sets -----------------------------------------------------
{
    my $r = fetch("$P?multi", Cookie => "JSESSIONID=$id{pfx1}~s",
                  'X-Set1' => 'other=1; Path=/',
                  'X-Set2' => 'JSESSIONID=abc; Path=/; Secure; HttpOnly',
                  'X-Set3' => 'JSESSIONID="q1"; Path=/x',
                  'X-Set4' => 'last=2');
    is_deeply([set_cookies($r)],
              ['other=1; Path=/', "JSESSIONID=$id{pfx1}~abc; Path=/; Secure; HttpOnly",
               "JSESSIONID=\"$id{pfx1}~q1\"; Path=/x", 'last=2'],
              'several Set-Cookie: only JSESSIONID values change, order and attributes kept');

    my @del = ('JSESSIONID=; Path=/', 'JSESSIONID=x; Max-Age=0; Path=/',
               'JSESSIONID=y; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/',
               'JSESSIONID=""');
    $r = fetch("$P?delete", Cookie => "JSESSIONID=$id{pfx1}~s",
               map { ("X-Set" . ($_ + 1) => $del[$_]) } 0 .. $#del);
    is_deeply([set_cookies($r)], \@del, 'deletions pass untouched');
    like(log_line('delete'), qr/ status=valid .* changed=- /, 'and change no route');

    $r = fetch("$P?echo", Cookie => "JSESSIONID=$id{pfx1}~s",
               'X-Set1' => "JSESSIONID=$id{pfx3}~abc; Path=/",
               'X-Set2' => "JSESSIONID=$id{pfx2}~$id{pfx1}~def");
    is_deeply([set_cookies($r)], ["JSESSIONID=$id{pfx1}~abc; Path=/", "JSESSIONID=$id{pfx1}~def"],
              'a prefix the application echoes back is replaced, never doubled');

    $r = fetch('/pfx/no-such-file?404', Cookie => "JSESSIONID=$id{pfx3}~s",
               'X-Set1' => 'JSESSIONID=e404');
    is($r->code, 404, 'a 404 from the member');
    is_deeply([set_cookies($r)], ["JSESSIONID=$id{pfx3}~e404"], 'gets its cookie prefixed too');

    $r = fetch('/pfxerr/no-such-file?override', Cookie => "JSESSIONID=$id{pfx3}~s",
               'X-Set1' => 'JSESSIONID=err');
    is($r->code, 404, 'ProxyErrorOverride: httpd makes the error page');
    ok(!grep({ /^JSESSIONID=(?!\Q$id{pfx3}\E~)/ } set_cookies($r)),
       'and no unprefixed JSESSIONID goes out') or diag join ' | ', set_cookies($r);

    $r = fetch('/pfxco/hello.txt?err-headers', Cookie => "JSESSIONID=$id{pfx2}~s");
    is_deeply([grep { /^JSESSIONID=/ } set_cookies($r)],
              ["JSESSIONID=$id{pfx2}~fromfront; path=/; domain=127.0.0.1"],
              'a JSESSIONID in err_headers_out gets the prefix too');

    $r = fetch('/pfxnc/hello.txt?nocache', 'X-Set1' => 'JSESSIONID=nc');
    like($r->header('Cache-Control') // '', qr/private/,
         'AffinityNoCache: a response whose cookie got a prefix is private');
    $r = fetch('/pfxnc/hello.txt?nocache-none');
    unlike($r->header('Cache-Control') // '', qr/private/, 'one without is left alone');
    $r = fetch('/pfxnc/hello.txt?nocache-del', 'X-Set1' => 'JSESSIONID=; Max-Age=0');
    unlike($r->header('Cache-Control') // '', qr/private/, 'and so is one with a deletion only');
}

# ---- no usable prefix: rendezvous hashing of the value ---------------------
{
    my @r = run_n(20, "$P?noprefix", Cookie => 'JSESSIONID=sess-42');
    my $h = one_member(@r);
    ok($h, 'a value without prefix: every request on one member') or diag spread(@r);
    @r = run_n(10, "$P?unknown", Cookie => "JSESSIONID=$FOREIGN~sess-42");
    is(one_member(@r), $h, 'an unknown prefix on the same value: the same member');
    is(seen($r[0]), 'JSESSIONID=sess-42', 'and its prefix is cut all the same');
    like(log_line('unknown'), qr/ status=invalid route=$id{$h} /, 'logged as invalid');

    my %n;
    for my $i (1 .. 60) {
        $n{ backend(fetch("$P?spread", Cookie => "JSESSIONID=s$i")) }++;
    }
    ok(keys(%n) == 3 && !grep({ $_ < 8 } values %n),
       'sixty values spread over the three members') or diag join ', ', %n;

    my $r = fetch("$P?hashed-set", Cookie => 'JSESSIONID=sess-42', 'X-Set1' => 'JSESSIONID=sess-43');
    is_deeply([set_cookies($r)], ["JSESSIONID=$id{$h}~sess-43"], 'the new cookie names the member that served');
    like(log_line('hashed-set'), qr/ status=invalid route=$id{$h} changed=1 /,
         'BALANCER_ROUTE_CHANGED set');
}

# ---- balancer-manager: a disabled member's sessions move and stay ------------
{
    my @before = run_n(5, "$P?move-before", Cookie => 'JSESSIONID=moving');
    my $hashed = one_member(@before);
    my $victim = $hashed eq 'pfx2' ? 'pfx1' : 'pfx2';
    edit('pfx', $victim, w_status_D => 1);
    my @r = run_n(20, "$P?down", Cookie => "JSESSIONID=$id{$victim}~moving");
    my $to = one_member(@r);
    ok($to && $to ne $victim, "$victim disabled live: its session moves to one member") or diag spread(@r);
    is($to, $hashed, 'the one the value hashes to');
    like(log_line('down'), qr/ status=down route=$id{$to} /, 'logged as down');
    my $r = fetch("$P?down-set", Cookie => "JSESSIONID=$id{$victim}~moving", 'X-Set1' => 'JSESSIONID=moving');
    is_deeply([set_cookies($r)], ["JSESSIONID=$id{$to}~moving"], 'a cookie set there names the new member');
    edit('pfx', $victim, w_status_D => 0);
    @r = run_n(10, "$P?back", Cookie => "JSESSIONID=$id{$victim}~moving");
    is(one_member(@r), $victim, 'enabled again: the session is back on its member');

    # drain: existing sessions stay, hashed ones avoid it
    edit('pfx', 'pfx3', w_status_N => 1);
    @r = run_n(10, "$P?drain", Cookie => "JSESSIONID=$id{pfx3}~d");
    is(one_member(@r), 'pfx3', 'a draining member keeps its sessions');
    my %n;
    $n{ backend(fetch("$P?drain-hash", Cookie => "JSESSIONID=h$_")) }++ for 1 .. 30;
    ok(!$n{pfx3}, 'and is given no hashed ones') or diag join ', ', %n;
    edit('pfx', 'pfx3', w_status_N => 0);

    # route edited live: the old ID names nothing, the new one names the member
    edit('pfx', 'pfx3', w_wr => 'p9');
    @r = run_n(10, "$P?route-new", Cookie => 'JSESSIONID=' . sha1_hex('p9') . '~r');
    is(one_member(@r), 'pfx3', 'route edited live: the new ID names the member');
    $r = fetch("$P?route-old", Cookie => "JSESSIONID=$id{pfx3}~r");
    like(log_line('route-old'), qr/ status=invalid /, 'the old ID names no member any more');
    $r = fetch("$P?route-set", Cookie => 'JSESSIONID=' . sha1_hex('p9') . '~r', 'X-Set1' => 'JSESSIONID=r');
    is_deeply([set_cookies($r)], ['JSESSIONID=' . sha1_hex('p9') . '~r'], 'cookies get the new ID');
    edit('pfx', 'pfx3', w_wr => 'p3');
    is(backend(fetch("$P?route-back", Cookie => "JSESSIONID=$id{pfx3}~r")), 'pfx3', 'route restored');

    # a member added live (growth): its ID works once it is enabled
    my $url = 'http://127.0.0.1:' . backend_port('backend4');
    bm_post('pfx', b_wyes => 1, b_nwrkr => $url);
    my $new_id = sha1_hex("127.0.0.1:" . backend_port('backend4'));
    bm_post('pfx', w => $url, w_status_D => 0);
    @r = run_n(10, "$P?added", Cookie => "JSESSIONID=$new_id~n");
    is(one_member(@r), 'backend4', 'a member added live is found by its prefix');
    bm_post('pfx', w => $url, w_status_D => 1);
}

# ---- nofailover and Route Redirect ---------------------------------------------
{
    my $r = fetch('/pfxnf/hello.txt?nf', Cookie => "JSESSIONID=$id{pfx2}~x");
    is($r->code, 503, 'nofailover: a session on a disabled member gets 503');
    like(log_line('nf'), qr/ 503 status=down route=- /, 'logged as down, no route');
    $r = fetch('/pfxnf/hello.txt?nf-unknown', Cookie => "JSESSIONID=$FOREIGN~x");
    is($r->code, 200, 'a session without a usable prefix is still served');
    $r = fetch('/pfxnf/hello.txt?nf-none');
    is($r->code, 200, 'and a new one');

    my @r = run_n(10, '/pfxrr/hello.txt?rr', Cookie => "JSESSIONID=$id{pfx1}~x");
    is(one_member(@r), 'pfx2', 'Route Redirect: p1 disabled, its sessions go to p2');
    like(log_line('rr'), qr/ status=down route=$id{pfx2} /, 'logged as down');
}

# ---- hostile values ---------------------------------------------------------------
{
    my @hostile = ('JSESSIONID=' . ('~' x 3000), 'JSESSIONID=' . ($id{pfx1} . '~') x 150,
                   'JSESSIONID="' . $id{pfx1} . '~', 'JSESSIONID=' . uc($id{pfx1}) . '~x',
                   join('; ', map { "JSESSIONID=$FOREIGN~$_" } 1 .. 140));
    my @codes = map { fetch("$P?hostile", Cookie => $_)->code } @hostile;
    ok(!grep({ $_ != 200 } @codes), 'hostile values: every one served') or diag "@codes";
}

# ---- the directive ---------------------------------------------------------------
{
    my $httpd = Apache::Test::vars('httpd');
    my $module = File::Spec->rel2abs(Apache::Test::vars('serverroot') . '/../.libs/mod_affinity.so');
    my $apxs = Apache::Test::vars('apxs');
    chomp(my $libexec = `$apxs -q LIBEXECDIR`);
    my $dir = Apache::Test::vars('t_logs') . '/prefix-t';
    mkdir $dir;
    my @bad = (['AffinityMode prefix', qr/AffinityMode prefix needs the name of the application's session cookie/],
               ['AffinityMode prefix "bad name"', qr/AffinityMode prefix: "bad name" is not a valid cookie name/],
               ['AffinityMode cookie JSESSIONID', qr/AffinityMode cookie takes no cookie name/]);
    my $i = 0;
    for my $case (@bad) {
        my $conf = "$dir/bad" . $i++ . '.conf';
        open my $fh, '>', $conf or die;
        print $fh join "\n", "ServerRoot \"$dir\"", 'ServerName localhost', "ErrorLog \"$dir/err.log\"",
            "LoadModule mpm_prefork_module $libexec/mod_mpm_prefork.so",
            "LoadModule affinity_module $module", $case->[0], '';
        close $fh;
        my $out = `$httpd -t -f $conf 2>&1`;
        like($out, $case->[1], "refused at startup: $case->[0]");
    }
}
