# Environment variables for logging, seen in the access log
# (format "affinity" in extra.conf.in).
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use Apache::TestRequest;
use lib 't/lib';
use AffinityTest;

plan tests => 9;

my $b1 = route_id('', '127.0.0.1:' . backend_port('backend1'));
my $b3 = route_id('', 'blue');
my $unknown = route_id('', 'nobody-here');

my $r = fetch('/app/hello.txt?env-new');
my $new = cookie_value($r);
fetch('/app/hello.txt?env-valid', Cookie => "ROUTEID=$b3");
fetch('/app/hello.txt?env-invalid', Cookie => "ROUTEID=$unknown");
fetch('/app/hello.txt?env-malformed', Cookie => 'ROUTEID=xyz');
# the first value names no member, the second does: the session variables
# still name the first (as stock stickiness reads the first route)
fetch('/app/hello.txt?env-second', Cookie => "ROUTEID=$unknown; ROUTEID=$b3");

# prefix and learn modes name their own cookie's first ID the same way
my $p1 = route_id('', 'p1');
fetch('/pfx/hello.txt?env-prefix-hit', Cookie => "JSESSIONID=$p1~abc");
fetch('/pfx/hello.txt?env-prefix-unknown', Cookie => "JSESSIONID=$unknown~abc");
fetch('/pfx/hello.txt?env-prefix-second', Cookie => "JSESSIONID=$unknown~abc; JSESSIONID=$p1~def");
my $learned = backend(fetch('/lrnb/hello.txt?env-learn-set', 'X-Set1' => "SID=env-$$; Path=/"));
(my $learned_route = $learned) =~ s/^lrn/l/;
fetch('/lrnb/hello.txt?env-learn-hit', Cookie => "SID=env-$$");

sub line_for {
    my $tag = shift;
    my $line;
    wait_until(5, sub { ($line) = grep { m{^/\w+/hello\.txt\?$tag } } log_lines('affinity_log'); $line });
    return $line // '';
}

like line_for('env-new'), qr/ 200 status=new route=$new changed=1 session=- /,
    'new session: AFFINITY_STATUS=new, AFFINITY_ROUTE and BALANCER_ROUTE_CHANGED set';
like line_for('env-valid'), qr/ 200 status=valid route=$b3 changed=- session=$b3 worker=http:\/\/127\.0\.0\.1:\d+/,
    'cookie honoured: valid, no route change, BALANCER_SESSION_ROUTE is the ID';
like line_for('env-invalid'), qr/ 200 status=invalid route=[0-9a-f]{40} changed=1 session=$unknown /,
    'unknown ID: invalid, new route';
like line_for('env-malformed'), qr/ 200 status=invalid route=[0-9a-f]{40} changed=1 session=- /,
    'malformed value: invalid, no session route';
like line_for('env-second'), qr/ 200 status=valid route=$b3 changed=- session=$unknown /,
    'first value unknown, second kept: BALANCER_SESSION_ROUTE is the first ID';
like line_for('env-prefix-hit'), qr/ 200 status=valid route=$p1 changed=- session=$p1 /,
    'prefix mode, usable prefix: BALANCER_SESSION_ROUTE is its ID';
like line_for('env-prefix-unknown'), qr/ 200 status=invalid route=[0-9a-f]{40} changed=- session=$unknown /,
    'prefix mode, unknown prefix: BALANCER_SESSION_ROUTE is still the ID the cookie carried';
like line_for('env-prefix-second'), qr/ 200 status=valid route=$p1 changed=- session=$unknown /,
    'prefix mode, first prefix unknown, second kept: BALANCER_SESSION_ROUTE is the first ID';
my $lid = route_id('learn-test-salt', $learned_route);
like line_for('env-learn-hit'), qr/ 200 status=valid route=$lid changed=- session=$lid /,
    'learn mode, learned value: BALANCER_SESSION_ROUTE is the ID learned';
