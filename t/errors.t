# Error responses after a member answered (issue 9.4): ProxyErrorOverride
# with httpd's own error page, with a local ErrorDocument (an internal
# redirect), and with FastCGI members (php-cgi), which leave no
# "proxy-status" note.  Whenever a member answered, the client's response
# carries one cookie naming it and the log says the same; when none did,
# neither names one.
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use Apache::TestRequest;
use lib 't/lib';
use AffinityTest;
use AffinityResponse;

plan tests => 28;

my (%id, %member_of);
for my $m ('respback1', 'respback2') {
    $id{$m} = route_id('', '127.0.0.1:' . backend_port($m));
    $member_of{$id{$m}} = $m;
}
my %port = (fcgi1 => conf_port('AFFINITY_FCGI1_PORT'),
            fcgi2 => conf_port('AFFINITY_FCGI2_PORT'));
for my $m ('fcgi1', 'fcgi2') {
    $id{$m} = route_id('', "127.0.0.1:$port{$m}");
    $member_of{$id{$m}} = $m;
}
my $php = -x '/usr/bin/php-cgi' ? '/usr/bin/php-cgi' : 'php-cgi';
my @guards = map {
    start_member(120, { AFFINITY_TEST_MEMBER => $_, PHP_FCGI_CHILDREN => 0 },
                 [$port{$_}], $php, '-b', "127.0.0.1:$port{$_}")
} sort keys %port;

sub one_cookie {
    my ($res, $what) = @_;
    my @c = affinity_cookies($res);
    is scalar(@c), 1, "$what: one affinity cookie";
    my ($v) = ($c[0] // '') =~ /^ROUTEID=([0-9a-f]{40});/;
    ok $v && $member_of{$v}, "$what: naming a member";
    return ($v // '', $c[0] // '');
}

# ---- http members: httpd's error page, then a local ErrorDocument ---------
my $res = fetch('/errpage/missing.txt');
is $res->code, 404, 'error page: the member\'s 404, overridden';
my ($v) = one_cookie($res, 'error page');
like access_line('/errpage/missing.txt'), qr/ 404 status=new route=$v changed=1 /,
    'error page: the log names the same member';

$res = fetch('/errdoc/missing.txt');
is $res->code, 404, 'ErrorDocument: 404';
is $res->content, "local error page 404\n", 'ErrorDocument: the local page';
my $c;
($v, $c) = one_cookie($res, 'ErrorDocument');
like $c, qr/; X-Always$/, 'ErrorDocument: the cookie is in err_headers_out, seen by Header always';
like access_line('/errdoc/missing.txt'), qr/ 404 status=new route=$v changed=1 /,
    'ErrorDocument: AFFINITY_ROUTE and BALANCER_ROUTE_CHANGED follow into the log';
$res = fetch('/resp/hello.txt', Cookie => "ROUTEID=$v");
is backend($res), $member_of{$v}, 'ErrorDocument: the cookie sticks to the member that answered';

# no member answered: neither the page nor the log names one
$res = fetch('/errdown/x');
is $res->code, 503, 'all members down: 503';
is $res->content, "local error page 503\n", 'all members down: the local page';
is scalar(affinity_cookies($res)), 0, 'all members down: no cookie';
like access_line('/errdown/x'), qr/ 503 status=new route=- changed=- /,
    'all members down: the log names no member';

# ---- FastCGI members ---------------------------------------------------------
$res = fetch('/fcgi/ok');
is $res->code, 200, 'fcgi: 200';
my ($ok) = one_cookie($res, 'fcgi 200');
is $res->content, "served by $member_of{$ok}\n", 'fcgi 200: the cookie names the member';

$res = fetch('/fcgi/missing');
is $res->code, 404, 'fcgi: the member\'s 404, overridden';
($v) = one_cookie($res, 'fcgi error page');
like access_line('/fcgi/missing'),
    qr/ 404 status=new route=$v changed=1 session=- worker=fcgi:\/\/127\.0\.0\.1:$port{$member_of{$v} \/\/ 'x'}/,
    'fcgi error page: AFFINITY_ROUTE names the member that answered';

$res = fetch('/fcgidoc/missing');
is $res->content, "local error page 404\n", 'fcgi ErrorDocument: the local page';
($v) = one_cookie($res, 'fcgi ErrorDocument');
like access_line('/fcgidoc/missing'), qr/ 404 status=new route=$v changed=1 /,
    'fcgi ErrorDocument: the log names the same member';
$res = fetch('/fcgi/ok', Cookie => "ROUTEID=$v");
is $res->content, "served by $member_of{$v}\n", 'fcgi: the cookie sticks to that member';
