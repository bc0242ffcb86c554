# The per-process route tables (t/conf/table.conf.in): one balancer reached
# from sections with equal and with different AffinitySalt strings.  Tables
# are keyed by the salt's bytes, so equal salts share one table and two
# salts keep two side by side: alternating sections never rebuilds.  And
# whatever other threads do to the tables, AFFINITY_ROUTE (X-Route, the
# access log) names the member that served.
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use Apache::TestRequest;
use File::Temp qw(tempfile);
use LWP::UserAgent;
use lib 't/lib';
use AffinityTest;

plan tests => 7;

my %salt = ('twin-a' => 'saltA', 'twin-b' => 'saltA', 'twin-c' => 'saltB');
my %identity = (backend1 => '127.0.0.1:' . backend_port('backend1'),
                backend2 => '127.0.0.1:' . backend_port('backend2'),
                backend3 => 'blue');
my %backend_of_port = map { backend_port($_) => $_ } qw(backend1 backend2 backend3);

sub expected_id {
    my ($section, $backend) = @_;
    return '' unless $identity{$backend};
    return route_id($salt{$section}, $identity{$backend});
}

# AFF0011 lines for this balancer, per process
sub builds {
    my %n;
    for (log_lines('error_log')) {
        next unless /AFF0011: balancer:\/\/twinsalt: route table built/;
        my ($pid) = /\[pid (\d+)/;
        $n{ $pid // 0 }++;
    }
    return \%n;
}

sub most_builds_since {
    my ($before) = @_;
    my $now = builds();
    my $max = 0;
    for my $pid (keys %$now) {
        my $d = $now->{$pid} - ($before->{$pid} // 0);
        $max = $d if $d > $max;
    }
    return $max;
}

# One keep-alive connection: one process serves every request.
my $url = 'http://' . Apache::TestRequest::hostport();
my $ua = LWP::UserAgent->new(keep_alive => 1, timeout => 20);

my $start = builds();
my $before = $start;
my $wrong = 0;
for my $i (1 .. 20) {
    my $section = $i % 2 ? 'twin-a' : 'twin-b';
    my $r = $ua->get("$url/$section/hello.txt?alt=$i");
    $wrong++ unless $r->code == 200
        && ($r->header('X-Route') // '') eq expected_id($section, backend($r));
}
is $wrong, 0, 'equal salts in two sections: X-Route is the serving member\'s ID';
my $n = most_builds_since($before);
cmp_ok $n, '<=', 1, "equal salts in two sections share one table ($n builds in one process for 20 alternating requests)";

$before = builds();
$wrong = 0;
for my $i (1 .. 20) {
    my $section = $i % 2 ? 'twin-a' : 'twin-c';
    my $r = $ua->get("$url/$section/hello.txt?alt2=$i");
    $wrong++ unless $r->code == 200
        && ($r->header('X-Route') // '') eq expected_id($section, backend($r));
}
is $wrong, 0, 'two salts for one balancer: X-Route is the serving member\'s ID';
$n = most_builds_since($before);
cmp_ok $n, '<=', 1, "two salts for one balancer keep two tables side by side ($n builds in one process for 20 alternating requests)";

# Concurrent clients over all three sections, with and without cookies, in
# the threads of one child (event) or in several children (prefork).
my $clients = 8;
my $per_client = 150;
my @kids;
for my $c (1 .. $clients) {
    my ($fh, $file) = tempfile(UNLINK => 1);
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if (!$pid) {
        my $kua = LWP::UserAgent->new(keep_alive => 1, timeout => 20);
        my %jar;
        my @sections = ('twin-a', 'twin-b', 'twin-c');
        my $deadline = time + 60;
        for my $i (1 .. $per_client) {
            last if time > $deadline;
            my $section = $sections[($i + $c) % 3];
            my @h;
            push @h, Cookie => "ROUTEID=$jar{ $salt{$section} }"
                if $i % 2 && $jar{ $salt{$section} };
            my $r = $kua->get("$url/$section/hello.txt?c=$c&i=$i", @h);
            my $got = $r->header('X-Route') // '';
            my $want = expected_id($section, backend($r));
            my $cookie = cookie_value($r);
            $jar{ $salt{$section} } = $cookie if $cookie;
            print $fh "$section $i: status ", $r->code, " backend ", backend($r),
                " X-Route '$got', expected '$want'\n"
                unless $r->code == 200 && $got eq $want;
        }
        close $fh;
        exit 0;
    }
    close $fh;
    push @kids, [$pid, $file];
}
my @bad;
for my $k (@kids) {
    waitpid $k->[0], 0;
    open my $fh, '<', $k->[1] or die;
    push @bad, <$fh>;
}
is scalar(@bad), 0, "$clients concurrent clients: every X-Route is the serving member's ID"
    or diag join '', @bad[0 .. ($#bad < 9 ? $#bad : 9)];

$n = most_builds_since($start);
cmp_ok $n, '<=', 2, "two salts, three sections, concurrent clients: $n builds in one process over the whole test";

# The access log is written after the response, the latest reader of all.
my $total = $clients * $per_client;
my @lines;
wait_until(10, sub {
    @lines = grep { m{^/twin-[abc]/hello\.txt\?c=} } log_lines('affinity_log');
    @lines >= $total;
});
my @badlog;
for (@lines) {
    my ($section, $route, $port) = m{^/(twin-[abc])/\S* \d+ status=\S* route=(\S*) .* worker=http://127\.0\.0\.1:(\d+)};
    my $want = defined $port ? expected_id($section, $backend_of_port{$port} // '') : 'unparsed';
    push @badlog, $_ unless defined $route && $route eq $want;
}
is scalar(@badlog), 0, scalar(@lines) . " access-log lines: every AFFINITY_ROUTE is the serving member's ID"
    or diag join '', @badlog[0 .. ($#badlog < 9 ? $#badlog : 9)];
