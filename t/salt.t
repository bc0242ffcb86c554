# AffinitySalt: a string, a file's first line, and a random salt shared by
# every child; the salt never reaches the logs.
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use Apache::TestRequest;
use lib 't/lib';
use AffinityTest;

plan tests => 11;

my $p1 = '127.0.0.1:' . backend_port('backend1');
my $p2 = '127.0.0.1:' . backend_port('backend2');

# String salt; backend2 has route=blue.
my %want = (backend1 => route_id('s3cret', $p1), backend2 => route_id('s3cret', 'blue'));
my %got;
for (1 .. 6) {
    my $r = fetch('/salted/hello.txt');
    $got{ backend($r) } = cookie_value($r);
}
is_deeply \%got, \%want, 'IDs are sha1_hex(salt . identity), route= identity too';
isnt $want{backend1}, route_id('', $p1), 'and differ from the unsalted ID';
is backend(fetch('/salted/hello.txt', Cookie => "ROUTEID=$want{backend2}")), 'backend2',
    'salted ID sticks';
my $r = fetch('/salted/hello.txt', Cookie => 'ROUTEID=' . route_id('', $p1));
ok cookie_value($r), 'the unsalted ID of a member is unknown to a salted balancer';

# File salt: first line, newline stripped.
%got = ();
for (1 .. 4) {
    my $r = fetch('/filesalt/hello.txt');
    $got{ backend($r) } = cookie_value($r);
}
is_deeply \%got, { backend1 => route_id('pepper-for-tests', $p1),
                   backend2 => route_id('pepper-for-tests', $p2) },
    'file:PATH salt is the first line of the file';

# Random salt: not the unsalted ID, and the same in every child.
$r = fetch('/randsalt/hello.txt');
my ($id, $member) = (cookie_value($r), backend($r));
ok $id && $id ne route_id('', $member eq 'backend1' ? $p1 : $p2),
    'random salt: the ID is not the unsalted one';
my ($moved, $reset) = (0, 0);
for (1 .. 30) {
    my $x = fetch('/randsalt/hello.txt', Cookie => "ROUTEID=$id");
    $moved++ if backend($x) ne $member;
    $reset++ if affinity_cookies($x);
}
is $moved + $reset, 0, 'random-salt ID honoured by every child (30 requests)';

my $log = error_log_text();
like $log, qr/AFF0004: AffinitySalt random: made a new random salt/,
    'a fresh random salt is announced at NOTICE level';
unlike $log, qr/s3cret/, 'the string salt never appears in the error log';
unlike $log, qr/pepper-for-tests/, 'nor the file salt';
unlike join('', log_lines('affinity_log')), qr/s3cret|pepper-for-tests/,
    'nor in the access log';
