# Cookie mode: IDs, stickiness, spread of new sessions, malformed and
# hostile cookies (balancer://app: backend1, backend2 loadfactor=2,
# backend3 route=blue; no salt).
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use Apache::TestRequest;
use lib 't/lib';
use AffinityTest;

plan tests => 32;

my %id = (
    backend1 => route_id('', '127.0.0.1:' . backend_port('backend1')),
    backend2 => route_id('', '127.0.0.1:' . backend_port('backend2')),
    backend3 => route_id('', 'blue'),
);
my %by_id = reverse %id;

# First visit: one cookie, naming the member that served, by the SHA1 rule.
my $res = fetch('/app/hello.txt');
is $res->code, 200, 'first visit answered';
my @set = affinity_cookies($res);
is scalar(@set), 1, 'exactly one affinity Set-Cookie';
my $served = backend($res);
is cookie_value($res), $id{$served},
    "cookie is sha1_hex(identity) of the member that served ($served)";
like $set[0], qr/^ROUTEID=[0-9a-f]{40}; Path=\/; HttpOnly$/,
    'default name and attributes';

# Revisits stick and set nothing.
my ($moved, $reset) = (0, 0);
for (1 .. 15) {
    my $r = fetch('/app/hello.txt', Cookie => "ROUTEID=$id{$served}");
    $moved++ if backend($r) ne $served;
    $reset++ if affinity_cookies($r);
}
is $moved, 0, '15 revisits all on the same member';
is $reset, 0, 'and none sets the cookie again';

# Every member's ID routes to that member (route= identity included).
for my $b (sort keys %id) {
    my @seen = map { backend(fetch('/app/hello.txt', Cookie => "ROUTEID=$id{$b}")) } 1 .. 5;
    is_deeply \@seen, [($b) x 5], "ID of $b routes to $b";
}

# Other cookies and the member's own Set-Cookie are left alone.
$res = fetch('/app/own-cookie.txt', Cookie => "a=1; ROUTEID=$id{backend1}; b=2");
is backend($res), 'backend1', 'affinity cookie among others honoured';
like $res->header('X-Seen-Cookie'), qr/ROUTEID=$id{backend1}/,
    'the member still sees the cookie (AffinityCookieRemove Off)';
is scalar(grep { /^app=backend-set/ } $res->header('Set-Cookie')), 1,
    "the member's own Set-Cookie passes through";
is scalar(affinity_cookies($res)), 0, 'no affinity cookie on a valid hit';

# New sessions spread by lbfactor (1:2:1), like byrequests.
my %count;
for (1 .. 80) {
    $count{ backend(fetch('/app/hello.txt')) }++;
}
note explain \%count;
ok(($count{backend2} // 0) >= 30 && ($count{backend2} // 0) <= 50,
   "loadfactor 2 member got about half of 80 new sessions ($count{backend2})");
ok(($count{backend1} // 0) >= 10 && ($count{backend3} // 0) >= 10,
   'the loadfactor 1 members got about a quarter each');

# Unknown and malformed IDs: treated as absent, a new cookie, never a 5xx.
my $unknown = route_id('', '127.0.0.1:9');
my @bad = ($unknown, uc $id{backend1}, substr($id{backend1}, 0, 39),
           "$id{backend1}0", 'zzz', '', "\"$unknown\"", 'g' x 40);
for my $v (@bad) {
    my $r = fetch('/app/hello.txt', Cookie => "ROUTEID=$v");
    my $new = cookie_value($r) // '';
    ok $r->code == 200 && $by_id{$new} && $by_id{$new} eq backend($r),
       "ROUTEID=" . substr($v, 0, 12) . "...: new session, cookie names the member";
}

# Quoted values are accepted.
$res = fetch('/app/hello.txt', Cookie => "ROUTEID=\"$id{backend3}\"");
ok backend($res) eq 'backend3' && !affinity_cookies($res), 'quoted ID honoured';

# Several values: the first naming a usable member wins, in header order,
# across Cookie headers too.
$res = fetch('/app/hello.txt', Cookie => "ROUTEID=$unknown; ROUTEID=$id{backend1}; ROUTEID=$id{backend2}");
ok backend($res) eq 'backend1' && !affinity_cookies($res),
   'unknown value skipped, first known one wins';
$res = fetch('/app/hello.txt', Cookie => ["x=1; ROUTEID=$id{backend3}", "ROUTEID=$id{backend1}"]);
is backend($res), 'backend3', 'two Cookie headers: the first value wins';
$res = fetch('/app/hello.txt', Cookie => ['x=1', "ROUTEID=$id{backend2}"]);
ok backend($res) eq 'backend2' && !affinity_cookies($res),
   'value in the second Cookie header honoured';

# Hostile Cookie headers: never a 5xx, the server keeps answering.
my @hostile = (
    join('', map { chr(33 + int(rand(94))) } 1 .. 2000),
    'ROUTEID=' . ('a' x 8000),
    join('; ', ("ROUTEID=$unknown") x 150),
    join('; ', map { "c$_=v$_" } 1 .. 600),
    'ROUTEID', 'ROUTEID=";', '=====; ;;;; ROUTEID==', "ROUTEID=\"$id{backend1}",
    "ROUTEID = $id{backend2} ",
);
my $fives = 0;
for my $h (@hostile) {
    my $r = fetch('/app/hello.txt', Cookie => $h);
    $fives++ if $r->code >= 500;
}
is $fives, 0, 'hostile Cookie headers never give a 5xx';
is fetch('/app/hello.txt')->code, 200, 'server still answers afterwards';
$res = fetch('/app/hello.txt', Cookie => "ROUTEID = $id{backend2} ");
is backend($res), 'backend2', 'blanks around name and value tolerated';

# Settings in <Proxy balancer://...> apply through RewriteRule [P] too.
$res = fetch('/rw/hello.txt');
is $res->code, 200, 'RewriteRule [P] to an affinity balancer';
like( (affinity_cookies($res, 'RW'))[0] // '', qr/^RW=[0-9a-f]{40}; Path=\/rw\/$/,
     "the <Proxy> section's AffinityCookie applies");
