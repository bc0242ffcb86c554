# AffinityCookie attributes, AffinityCookieRemove and AffinityNoCache
# (balancer://options: SESS "Secure; SameSite=Lax", Remove On, NoCache On).
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use Apache::TestRequest;
use lib 't/lib';
use AffinityTest;

plan tests => 13;

my $res = fetch('/options/hello.txt');
my @set = affinity_cookies($res, 'SESS');
is scalar(@set), 1, 'one SESS cookie';
like $set[0], qr/^SESS=[0-9a-f]{40}; Path=\/; Secure; SameSite=Lax$/,
    'attributes copied after the value, Path=/ added first';
is scalar(affinity_cookies($res, 'ROUTEID')), 0, 'the default name is not used';
is $res->header('Cache-Control'), 'private', 'NoCache: a new cookie comes with Cache-Control: private';

my $id = cookie_value($res, 'SESS');
my $member = backend($res);

$res = fetch('/options/hello.txt', Cookie => "a=1; SESS=$id; b=2");
is backend($res), $member, 'the session sticks with the cookie removed upstream';
is $res->header('X-Seen-Cookie'), 'a=1; b=2', 'CookieRemove: the member sees the other cookies only';
ok !defined $res->header('Cache-Control'), 'no Cache-Control when no cookie is set';

$res = fetch('/options/hello.txt', Cookie => "SESS=$id");
is $res->header('X-Seen-Cookie') // '', '', 'a Cookie header left empty is dropped';

$res = fetch('/options/hello.txt', Cookie => ["x=1, SESS=$id", "SESS=$id"]);
is $res->header('X-Seen-Cookie'), 'x=1', 'every occurrence removed, across joined headers';

# The member's own Cache-Control: "public, max-age=60"
$res = fetch('/options/cc.txt');
is $res->header('Cache-Control'), 'max-age=60, private',
    'NoCache: public dropped, private added to the member\'s directives';
$id = cookie_value($res, 'SESS');
$res = fetch('/options/cc.txt', Cookie => "SESS=$id");
is $res->header('Cache-Control'), 'public, max-age=60',
    'a response setting no cookie keeps the member\'s Cache-Control';

# Defaults elsewhere: nothing removed; a new cookie is kept out of shared
# caches.
$res = fetch('/app/cc.txt', Cookie => 'a=1');
is $res->header('Cache-Control'), 'max-age=60, private', 'AffinityNoCache On by default';
like $res->header('X-Seen-Cookie'), qr/^a=1/, 'AffinityCookieRemove Off by default';
