use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use Apache::TestRequest;
use lib 't/lib';
use AffinityTest;

plan tests => 4;

my $res = fetch('/app/hello.txt');
is $res->code, 200, 'request through the affinity balancer';
is $res->content, "hello\n", 'body from a backend';
like backend($res), qr/^backend[123]$/, 'a member of the balancer served';
like GET_BODY('/balancer-manager'), qr{<td>affinity</td>},
    'affinity shows as the LB method in balancer-manager';
