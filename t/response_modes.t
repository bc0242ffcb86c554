# Prefix and learn modes on cookie mode's response path (t/errors.t and
# t/response.t for cookie mode): their work is done before mod_headers'
# filter, on httpd's error pages and local ErrorDocuments after a member
# answered, and for members of any scheme (php-cgi FastCGI members leave no
# "proxy-status" note).  Error documents are fetched without a query
# string: the log line's %U is the original request's, %q the error page's.
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use Apache::TestRequest;
use Digest::SHA ();
use File::Path qw(make_path);
use lib 't/lib';
use AffinityTest;
use AffinityResponse;

plan tests => 36;

my $RUN = join '', map { ('a' .. 'z')[rand 26] } 1 .. 8;
my (%id, %member_of);
my %port = (mfcgi1 => conf_port('AFFINITY_MFCGI1_PORT', 'response_modes'),
            mfcgi2 => conf_port('AFFINITY_MFCGI2_PORT', 'response_modes'));
my $sessions = Apache::Test::vars('t_logs') . '/response_modes-php';
for my $m (sort keys %port) {
    $id{$m} = route_id('', "127.0.0.1:$port{$m}");
    $member_of{$id{$m}} = $m;
    make_path("$sessions/$m");
}
my $php = -x '/usr/bin/php-cgi' ? '/usr/bin/php-cgi' : 'php-cgi';
my @guards = map {
    start_member(120, { AFFINITY_TEST_MEMBER => $_, PHP_FCGI_CHILDREN => 0 },
                 [$port{$_}], $php, '-d', "session.save_path=$sessions/$_",
                 '-b', "127.0.0.1:$port{$_}")
} sort keys %port;

sub set_cookies { my @c = $_[0]->header('Set-Cookie'); return @c }
sub php_cookie { return (grep { /^PHPSESSID=/ } set_cookies($_[0]))[0] // '' }
sub member { return $_[0]->header('X-Member') // '' }

# ---- prefix mode ---------------------------------------------------------------
my $res = fetch('/mpfxedit/hello.txt?edit', 'X-Set1' => 'JSESSIONID=abc; Path=/');
is $res->code, 200, 'prefix, Header edit: 200';
like join(' | ', set_cookies($res)), qr/^JSESSIONID=[0-9a-f]{40}~abc; Path=\/; X-Edited$/,
    'prefix: mod_headers edits the cookie with its prefix already in place';

my $pfx3 = lc Digest::SHA::sha1_hex('p3');
$res = fetch('/mpfxdoc/no-such-file-pfxdoc', Cookie => "JSESSIONID=$pfx3~s",
             'X-Set1' => 'JSESSIONID=err');
is $res->code, 404, 'prefix, ErrorDocument: 404';
is $res->content, "local error page 404\n", 'prefix, ErrorDocument: the local page';
ok !grep({ /^JSESSIONID=(?![0-9a-f]{40}~)/ } set_cookies($res)),
    'prefix, ErrorDocument: no unprefixed JSESSIONID';
like access_line('/mpfxdoc/no-such-file-pfxdoc'), qr/ 404 status=valid route=$pfx3 /,
    'prefix, ErrorDocument: AFFINITY_STATUS and AFFINITY_ROUTE follow into the log';

# FastCGI members: a PHP session
$res = fetch('/mpfxfcgi/ok?p1');
is $res->code, 200, 'prefix, fcgi: 200';
my ($pid, $psid) = php_cookie($res) =~ /^PHPSESSID=([0-9a-f]{40})~([^;]+)/;
ok $pid && $member_of{$pid}, 'prefix, fcgi: PHP\'s session cookie gets the prefix'
    or diag php_cookie($res);
$pid //= 'none'; $psid //= 'none';
is member($res), $member_of{$pid} // 'none', 'prefix, fcgi: naming the member that answered';
$res = fetch('/mpfxfcgi/ok?p2', Cookie => "PHPSESSID=$pid~$psid");
is member($res), $member_of{$pid} // 'none', 'prefix, fcgi: the session sticks';
is $res->header('X-Count'), 2, 'prefix, fcgi: PHP sees its own session ID';
like access_line('/mpfxfcgi/ok?p2'), qr/ 200 status=valid route=$pid /, 'prefix, fcgi: valid';

$res = fetch('/mpfxfcgi/missing?p3');
is $res->code, 404, 'prefix, fcgi error page: the member\'s 404, overridden';
($pid) = php_cookie($res) =~ /^PHPSESSID=([0-9a-f]{40})~/;
ok $pid && $member_of{$pid}, 'prefix, fcgi error page: the session cookie gets the prefix'
    or diag php_cookie($res);
$pid //= 'none';
like access_line('/mpfxfcgi/missing?p3'), qr/ 404 status=new route=$pid changed=1 /,
    'prefix, fcgi error page: the log names the same member';

$res = fetch('/mpfxfcgidoc/missing-p4');
is $res->content, "local error page 404\n", 'prefix, fcgi ErrorDocument: the local page';
($pid, $psid) = php_cookie($res) =~ /^PHPSESSID=([0-9a-f]{40})~([^;]+)/;
ok $pid && $member_of{$pid}, 'prefix, fcgi ErrorDocument: the session cookie gets the prefix'
    or diag php_cookie($res);
$pid //= 'none'; $psid //= 'none';
like access_line('/mpfxfcgidoc/missing-p4'), qr/ 404 status=new route=$pid changed=1 /,
    'prefix, fcgi ErrorDocument: the log names the same member';
$res = fetch('/mpfxfcgi/ok?p5', Cookie => "PHPSESSID=$pid~$psid");
is member($res), $member_of{$pid} // 'none', 'prefix, fcgi ErrorDocument: the session sticks';

# ---- learn mode ----------------------------------------------------------------
$res = fetch('/mlrnfcgi/ok?l1');
is $res->code, 200, 'learn, fcgi: 200';
my ($lsid) = php_cookie($res) =~ /^PHPSESSID=([^;~]+);/;
ok $lsid, 'learn, fcgi: PHP\'s session cookie as PHP set it' or diag php_cookie($res);
$lsid //= 'none';
my $m = member($res);
my $mid = $id{$m} // 'none';
$res = fetch('/mlrnfcgi/ok?l2', Cookie => "PHPSESSID=$lsid");
is member($res), $m, 'learn, fcgi: the learned session sticks';
like access_line('/mlrnfcgi/ok?l2'), qr/ 200 status=valid route=$mid /, 'learn, fcgi: valid';

$res = fetch('/mlrnfcgi/missing?l3');
is $res->code, 404, 'learn, fcgi error page: the member\'s 404, overridden';
($lsid) = php_cookie($res) =~ /^PHPSESSID=([^;~]+);/;
ok $lsid, 'learn, fcgi error page: PHP\'s session cookie' or diag php_cookie($res);
$lsid //= 'none';
my ($route) = access_line('/mlrnfcgi/missing?l3') =~ / 404 status=new route=([0-9a-f]{40}) /;
ok $route && $member_of{$route}, 'learn, fcgi error page: the log names a member';
$route //= 'none';
$res = fetch('/mlrnfcgi/ok?l4', Cookie => "PHPSESSID=$lsid");
like access_line('/mlrnfcgi/ok?l4'), qr/ 200 status=valid route=$route /,
    'learn, fcgi error page: the cookie was learned on the member that answered';
is member($res), $member_of{$route} // 'none', 'learn, fcgi error page: the session sticks';

$res = fetch('/mlrnfcgidoc/missing-l5');
is $res->content, "local error page 404\n", 'learn, fcgi ErrorDocument: the local page';
($lsid) = php_cookie($res) =~ /^PHPSESSID=([^;~]+);/;
ok $lsid, 'learn, fcgi ErrorDocument: PHP\'s session cookie' or diag php_cookie($res);
$lsid //= 'none';
($route) = access_line('/mlrnfcgidoc/missing-l5') =~ / 404 status=new route=([0-9a-f]{40}) /;
ok $route && $member_of{$route}, 'learn, fcgi ErrorDocument: the log names a member';
$route //= 'none';
fetch('/mlrnfcgi/ok?l6', Cookie => "PHPSESSID=$lsid");
like access_line('/mlrnfcgi/ok?l6'), qr/ 200 status=valid route=$route /,
    'learn, fcgi ErrorDocument: the cookie was learned on the member that answered';

# an http member's overridden error: httpd drops the member's headers, so
# there is nothing to learn, and nothing breaks
$res = fetch('/mlrndoc/no-such-file-l7', 'X-Set1' => "SID=doc-$RUN; Path=/");
is $res->code, 404, 'learn, ErrorDocument: 404';
is $res->content, "local error page 404\n", 'learn, ErrorDocument: the local page';
like access_line('/mlrndoc/no-such-file-l7'), qr/ 404 status=new route=[0-9a-f]{40} /,
    'learn, ErrorDocument: AFFINITY_ROUTE follows into the log';
fetch('/lrn/hello.txt?l8', Cookie => "SID=doc-$RUN");
like access_line('/lrn/hello.txt?l8'), qr/ 200 status=unknown /,
    'learn, ErrorDocument: a cookie the client never got is not learned';
