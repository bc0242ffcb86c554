# Websockets through an affinity balancer (issue 9.4): the 101 Switching
# Protocols goes out through ap_send_interim_response, past every output
# filter; a new session's 101 must still carry exactly one cookie naming the
# member that answered, and the log must say the same.  Members: a python
# websocket server on two ports (t/backends/ws_backend.py).
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use Apache::TestRequest;
use lib 't/lib';
use AffinityTest;
use AffinityResponse;

plan tests => 16;

my %port = (ws1 => conf_port('AFFINITY_WS1_PORT'), ws2 => conf_port('AFFINITY_WS2_PORT'));
my (%id, %member_of);
for my $m ('ws1', 'ws2') {
    $id{$m} = route_id('', "127.0.0.1:$port{$m}");
    $member_of{$id{$m}} = $m;
}
my $python = -x '/usr/bin/python3' ? '/usr/bin/python3' : 'python3';
my $guard = start_member(120, {}, [values %port], $python, 't/backends/ws_backend.py',
                         120, map { "$_=$port{$_}" } sort keys %port);

sub header_values {
    my ($lines, $name) = @_;
    return map { /^\Q$name\E:\s*(.*)$/i ? $1 : () } @$lines;
}

sub check_new {
    my ($path, $what) = @_;
    my ($status, $lines) = upgrade_request($path);
    is $status, 101, "$what: 101 Switching Protocols";
    my @c = grep { /^ROUTEID=/ } header_values($lines, 'Set-Cookie');
    is scalar(@c), 1, "$what: exactly one affinity cookie in the 101";
    my ($value) = ($c[0] // '') =~ /^ROUTEID=([0-9a-f]{40}); Path=\/; HttpOnly$/;
    my ($backend) = header_values($lines, 'X-Backend');
    is $member_of{$value // ''} // 'none', $backend // 'unknown',
        "$what: naming the member that answered";
    my $want = $value // 'none';
    like access_line($path), qr/ 101 status=new route=$want changed=1 /,
        "$what: AFFINITY_ROUTE and BALANCER_ROUTE_CHANGED in the log match";
    return $value;
}

check_new('/ws/chat?new', 'upgrade=websocket members');
check_new('/wsurl/chat?new', 'ws:// members');

my ($status, $lines) = upgrade_request('/ws/chat?hit', "Cookie: ROUTEID=$id{ws2}");
is $status, 101, 'cookie hit: 101';
is join('|', header_values($lines, 'X-Backend')), 'ws2', 'cookie hit: the named member';
is scalar(grep { /^ROUTEID=/ } header_values($lines, 'Set-Cookie')), 0,
    'cookie hit: no cookie';
like access_line('/ws/chat?hit'), qr/ 101 status=valid route=$id{ws2} changed=- /,
    'cookie hit: logged as valid';

# The first choice refuses the connection: the finder runs again, and the
# 101 names only the member that answered.
($status, $lines) = upgrade_request('/wsretry/chat?retry');
is $status, 101, 'retried: 101 from the second choice';
my @c = grep { /^ROUTEID=/ } header_values($lines, 'Set-Cookie');
is scalar(@c), 1, 'retried: one cookie, not one per attempt';
is $c[0] // '', "ROUTEID=$id{ws2}; Path=/; HttpOnly", 'retried: naming the member that answered';
like access_line('/wsretry/chat?retry'), qr/ 101 status=new route=$id{ws2} changed=1 /,
    'retried: the log names it too';

