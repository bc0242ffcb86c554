# Failover: members on 127.0.0.1 ports 1 and 2 refuse connections.
# balancer://failing: dead, dead, backend1 (retry=0, maxattempts=2);
# balancer://alldown: dead, dead.
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use Apache::TestRequest;
use lib 't/lib';
use AffinityTest;

plan tests => 9;

my $b1 = route_id('', '127.0.0.1:' . backend_port('backend1'));

# Whatever member is tried first, the request ends on backend1, and the
# response names it once: a member that failed for this request is never
# tried again, even with retry=0 (else 3 attempts could not always succeed).
my ($ok, $one, $right) = (0, 0, 0);
for (1 .. 12) {
    my $r = fetch('/failing/hello.txt?new');
    $ok++ if $r->code == 200 && backend($r) eq 'backend1';
    my @c = affinity_cookies($r);
    $one++ if @c == 1;
    $right++ if (cookie_value($r) // '') eq $b1;
}
is $ok, 12, '12 new sessions all served by the live member';
is $one, 12, 'each response carries exactly one affinity Set-Cookie';
is $right, 12, 'naming the member that finally served';

# A session on a dead member moves, with a new cookie.
my $dead = route_id('', '127.0.0.1:1');
my $r = fetch('/failing/hello.txt?down', Cookie => "ROUTEID=$dead");
ok $r->code == 200 && backend($r) eq 'backend1', 'session of a dead member fails over';
is join(',', affinity_cookies($r)), "ROUTEID=$b1; Path=/; HttpOnly", 'with one new cookie';

$r = fetch('/failing/hello.txt?valid', Cookie => "ROUTEID=$b1");
ok $r->code == 200 && !affinity_cookies($r), 'session of the live member: no cookie';

# Every member down: 503 and no cookie.
$r = fetch('/alldown/hello.txt?none');
is $r->code, 503, 'all members down: 503';
is scalar(affinity_cookies($r)), 0, 'a 503 no member served sets no cookie';

ok wait_until(5, sub { grep { m{^/failing/hello.txt\?down 200 status=down route=$b1 changed=1} } log_lines('affinity_log') }),
    'the moved session is logged as down, with the new route';
