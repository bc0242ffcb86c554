# What a response carries (issue 9, items 2, 3, 6, 7 and 8): the member's
# Cache-Control, a shared cache in front, mod_headers' rules, the member's
# own cookie of our name, and the Cookie header the member gets.
# Members: the respback vhosts of t/conf/response.conf.in, whose answers are
# chosen by words in the query string (t/conf/response-member.inc).
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use Apache::TestRequest;
use lib 't/lib';
use AffinityTest;

plan tests => 39;

my %id;
for my $m ('respback1', 'respback2') {
    $id{$m} = route_id('', '127.0.0.1:' . backend_port($m));
}
my %member_of = reverse %id;
my $id_re = qr/^ROUTEID=[0-9a-f]{40}; Path=\/; HttpOnly$/;

sub other { return $_[0] eq 'respback1' ? 'respback2' : 'respback1' }

# ---- 2. every Cache-Control line counts ----------------------------------
my $res = fetch('/resp/hello.txt?twolines');
is scalar(affinity_cookies($res)), 1, 'a new session gets its cookie';
my $cc = join ', ', $res->header('Cache-Control');
like $cc, qr/\bno-store\b/, "the member's no-store in its second line survives ($cc)";
is $cc, 'public, max-age=600, no-store', 'and the member\'s directives are left alone';
$res = fetch('/respremove/hello.txt?twolines');
$cc = join ', ', $res->header('Cache-Control');
like $cc, qr/\bno-store\b/, "the same with AffinityNoCache On said explicitly ($cc)";

$res = fetch('/resp/hello.txt?public');
is join(', ', $res->header('Cache-Control')), 'max-age=600, private',
    'AffinityNoCache is On by default: public dropped, private added';
my $s = cookie_value($res);
$res = fetch('/resp/hello.txt?public', Cookie => "ROUTEID=$s");
is join(', ', $res->header('Cache-Control')), 'public, max-age=600',
    'a response that sets no cookie keeps the member\'s Cache-Control';

# ---- 3. a shared cache in front (mod_cache, socache) -----------------------
# Control, AffinityNoCache Off: the first client's cookie is cached and
# handed to a client whose session is on the other member.
$res = fetch('/cachedoff/hello.txt?public&control');
my $first = cookie_value($res);
my $first_member = backend($res);
ok $first, 'control: the first client gets a cookie';
$res = fetch('/cachedoff/hello.txt?public&control',
             Cookie => 'ROUTEID=' . $id{other($first_member)});
like $res->header('X-Cache') // '', qr/^HIT/,
    'control: with AffinityNoCache Off the cache stores the response';
is cookie_value($res) // '', $first,
    'control: and hands the first client\'s cookie to another client';

# The default: the response setting a cookie is private, not stored.
$res = fetch('/cached/hello.txt?public&default');
$first = cookie_value($res);
$first_member = backend($res);
ok $first, 'default: the first client gets a cookie';
unlike $res->header('X-Cache') // '', qr/^HIT/, 'default: from the member';
my $later = other($first_member);
$res = fetch('/cached/hello.txt?public&default', Cookie => "ROUTEID=$id{$later}");
is backend($res), $later, 'default: a later client stays on its own member';
is scalar(affinity_cookies($res)), 0, 'default: and gets no foreign cookie';
unlike $res->header('X-Cache') // '', qr/^HIT/, 'default: nothing was cached';

# ---- 6. mod_headers sees the module's cookie ---------------------------------
$res = fetch('/edited/hello.txt');
my @c = affinity_cookies($res);
is scalar(@c), 1, 'Header edit: one cookie';
like $c[0] // '', qr/^ROUTEID=[0-9a-f]{40}; Path=\/; HttpOnly; X-Edited$/,
    'Header edit Set-Cookie applies to the module\'s cookie';
$res = fetch('/edited/hello.txt?appcookie');
is join('|', grep { /^app=/ } $res->header('Set-Cookie')), 'app=1; Path=/',
    'and leaves the member\'s other cookies to their own rules';
$res = fetch('/unset/hello.txt');
is scalar(() = $res->header('Set-Cookie')), 0,
    'Header unset Set-Cookie removes the module\'s cookie too';

# ---- 7. the member's own cookie of our name ------------------------------------
$res = fetch('/resp/hello.txt?ownroute&appcookie', Cookie => "ROUTEID=$id{respback1}");
is backend($res), 'respback1', 'cookie hit';
is scalar(affinity_cookies($res)), 0, 'the member\'s ROUTEID=backendvalue is dropped';
is join('|', grep { /^app=/ } $res->header('Set-Cookie')), 'app=1; Path=/',
    'the member\'s other cookies pass';
$res = fetch('/resp/hello.txt?after', Cookie => "ROUTEID=$id{respback1}");
is backend($res), 'respback1', 'the session is intact on the next request';

$res = fetch('/resp/hello.txt?ownroute');
@c = affinity_cookies($res);
is scalar(@c), 1, 'new session: exactly one ROUTEID cookie';
like $c[0] // '', $id_re, 'and it is the module\'s';
is $member_of{cookie_value($res) // ''} // '', backend($res), 'naming the member that served';

$res = fetch('/resp/hello.txt?maxage', Cookie => "ROUTEID=$id{respback2}");
is scalar(affinity_cookies($res)), 0, 'a member\'s cookie with a future Max-Age is dropped';

$res = fetch('/resp/hello.txt?logout', Cookie => "ROUTEID=$id{respback2}");
is join('|', affinity_cookies($res)), 'ROUTEID=; Max-Age=0; Path=/',
    'a deletion (Max-Age=0) passes: the application ends persistence';
$res = fetch('/resp/hello.txt?expired', Cookie => "ROUTEID=$id{respback2}");
is join('|', affinity_cookies($res)),
    'ROUTEID=bye; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/',
    'a deletion (Expires at the epoch) passes';
my $log = '';
wait_until(5, sub { $log = error_log_text(); $log =~ /AFF0031/ });
like $log, qr/AFF0030: the member's own Set-Cookie of ROUTEID dropped/,
    'the drop is in the trace log (AFF0030)';
like $log, qr/AFF0031: the member deletes cookie ROUTEID: passed on/,
    'and so is the deletion (AFF0031)';

# ---- 10. responses without a body still carry the cookie ----------------------
$res = Apache::TestRequest::HEAD('/resp/hello.txt?head');
@c = affinity_cookies($res);
is scalar(@c), 1, 'HEAD: a new session gets one cookie';
$res = fetch('/resp/hello.txt?lm', Cookie => "ROUTEID=$id{respback1}");
my $lm = $res->header('Last-Modified');
$res = fetch('/resp/hello.txt?notmodified', 'If-Modified-Since' => $lm);
is $res->code, 304, '304 from the member';
is scalar(affinity_cookies($res)), 1, '304: a new session gets its cookie';

# ---- 8. the Cookie header: commas and joined lines ------------------------------
my ($b1, $b2) = @id{qw(respback1 respback2)};
$res = fetch('/resp/hello.txt', Cookie => "pref=x,ROUTEID=$b2; ROUTEID=$b1");
is backend($res), 'respback1',
    'a ROUTEID after a bare comma is part of the value before it, not a cookie';
$res = fetch('/respremove/hello.txt', Cookie => "pref=x,ROUTEID=$b2; ROUTEID=$b1");
is backend($res), 'respback1', 'the same with AffinityCookieRemove On';
is $res->header('X-Seen-Cookie'), "pref=x,ROUTEID=$b2",
    'and the other cookie reaches the member byte for byte';
$res = fetch('/respremove/hello.txt', Cookie => ['a=1', "ROUTEID=$b2; b=2"]);
is backend($res), 'respback2', 'the ID in the second of two Cookie lines is read';
is $res->header('X-Seen-Cookie'), 'a=1; b=2',
    'the remaining pairs reach the member in one header joined with "; "';
$res = fetch('/respremove/hello.txt', Cookie => "a=1; b=2,c=3;ROUTEID=$b1");
is $res->header('X-Seen-Cookie'), 'a=1; b=2,c=3', 'untouched pairs keep their separators';
