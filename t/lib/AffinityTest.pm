package AffinityTest;
# Helpers shared by the mod_affinity test files.

use strict;
use warnings FATAL => 'all';

use Exporter 'import';
use Digest::SHA qw(sha1_hex);
use Apache::Test ();
use Apache::TestRequest ();
use HTTP::Request::Common ();

our @EXPORT = qw(fetch backend affinity_cookies cookie_value route_id
                 member_url backend_port bm_post bm_members member_status
                 log_lines error_log_text wait_until);

# One request without a cookie jar; %headers are sent as given.
sub fetch {
    my ($path, %headers) = @_;
    my $res = Apache::TestRequest::GET($path, %headers);
    return $res;
}

sub backend { return $_[0]->header('X-Backend') // '' }

# Set-Cookie values of the response whose name is $name (default ROUTEID).
sub affinity_cookies {
    my ($res, $name) = @_;
    $name //= 'ROUTEID';
    return grep { /^\Q$name\E=/ } $res->header('Set-Cookie');
}

# The value of the one affinity cookie set, or undef.
sub cookie_value {
    my ($res, $name) = @_;
    my @c = affinity_cookies($res, $name);
    return undef unless @c;
    my ($v) = $c[0] =~ /^[^=]+=([^;]*)/;
    return $v;
}

sub route_id {
    my ($salt, $identity) = @_;
    return sha1_hex(($salt // '') . $identity);
}

sub backend_port { return Apache::Test::vars(lc("$_[0]_port")) }

sub member_url { return 'http://127.0.0.1:' . backend_port($_[0]) }

# --- balancer-manager -----------------------------------------------------

sub referer {
    my $hostport = Apache::TestRequest::hostport();
    my ($host) = $hostport =~ /^([^:]+)/;
    return "http://$host/balancer-manager";
}

sub bm_nonce {
    my ($balancer) = @_;
    my $page = Apache::TestRequest::GET_BODY('/balancer-manager');
    my ($nonce) = $page =~ /b=\Q$balancer\E&amp;nonce=([0-9a-f-]+)/;
    die "no nonce for balancer $balancer on the manager page\n" unless $nonce;
    return $nonce;
}

# POST an edit as balancer-manager's own form does (nonce and Referer).
sub bm_post {
    my ($balancer, %params) = @_;
    my $req = HTTP::Request::Common::POST(
        Apache::TestRequest::resolve_url('/balancer-manager'),
        [ b => $balancer, nonce => bm_nonce($balancer), %params ],
        Referer => referer());
    my $res = Apache::TestRequest::user_agent()->request($req);
    die "balancer-manager POST failed: " . $res->status_line . "\n"
        unless $res->is_success;
    return $res;
}

# Members of a balancer from the manager's XML view:
# [{ name, route, redirect?, status, lbfactor, lbset, elected }]
sub bm_members {
    my ($balancer) = @_;
    my $req = HTTP::Request::Common::GET(
        Apache::TestRequest::resolve_url('/balancer-manager?xml=1'),
        Referer => referer());
    my $xml = Apache::TestRequest::user_agent()->request($req)->content;
    my ($section) = $xml =~ m{<httpd:name>balancer://\Q$balancer\E</httpd:name>(.*?)</httpd:balancer>}s;
    die "balancer $balancer not in the manager's XML\n" unless defined $section;
    my @members;
    while ($section =~ m{<httpd:worker>(.*?)</httpd:worker>}sg) {
        my $w = $1;
        my %m;
        for my $f (qw(name route status loadfactor lbset elected)) {
            ($m{$f}) = $w =~ m{<httpd:$f>(.*?)</httpd:$f>}s;
        }
        push @members, \%m;
    }
    return \@members;
}

sub member_status {
    my ($balancer, $url) = @_;
    for my $m (@{ bm_members($balancer) }) {
        return $m->{status} if $m->{name} eq $url;
    }
    return undef;
}

# --- logs ----------------------------------------------------------------------

sub log_lines {
    my ($file) = @_;
    my $path = Apache::Test::vars('t_logs') . "/$file";
    open my $fh, '<', $path or return ();
    return <$fh>;
}

sub error_log_text { return join '', log_lines('error_log') }

# Polls $check every 100 ms for up to $seconds (logs are written per request).
sub wait_until {
    my ($seconds, $check) = @_;
    for (1 .. $seconds * 10) {
        return 1 if $check->();
        select(undef, undef, undef, 0.1);
    }
    return $check->() ? 1 : 0;
}

1;
