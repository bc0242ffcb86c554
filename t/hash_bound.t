# Bounded loads (AffinityHashBalanceFactor 125, t/conf/extra.conf.in's
# hashbound; hashfree is the same without the bound): three slow members
# (t/lib/slow_backend.py, 30 ms a request, started here, added through
# balancer-manager), eight clients at once, one key sending half the
# requests.  Measured from the members' own request counts.
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use Apache::TestRequest;
use LWP::UserAgent ();
use POSIX ();
use Time::HiRes qw(sleep);
use lib 't/lib';
use AffinityTest;

plan tests => 4;

my $dir = Apache::Test::vars('t_logs') . '/hash-bound';
mkdir $dir;
my $script = Apache::Test::vars('t_dir') . '/lib/slow_backend.py';
my (@pids, @ports);
for my $i (1 .. 3) {
    unlink "$dir/port$i";
    my $pid = fork // die "fork: $!";
    if (!$pid) { exec('python3', $script, "slow$i", "$dir/port$i", '0.03', '120') or POSIX::_exit(127) }
    push @pids, $pid;
}
my $parent = $$;
END { kill 'TERM', @pids if @pids && $$ == $parent }
for my $i (1 .. 3) {
    for (1 .. 100) { last if -s "$dir/port$i"; sleep 0.05 }
    open my $fh, '<', "$dir/port$i" or die "slow$i did not start\n";
    push @ports, scalar <$fh>;
}
my @urls = map { "http://127.0.0.1:$_" } @ports;

for my $b (qw(hashbound hashfree)) {
    for my $u (@urls) {
        bm_post($b, b_wyes => 1, b_nwrkr => $u)
            unless grep { $_->{name} eq $u } @{ bm_members($b) };
        bm_post($b, w => $u, w_status_D => 0);
    }
}
ok +(grep { ($_->{status} // '') =~ /\bOk\b/ } @{ bm_members('hashbound') }) == 3,
   'three slow members added and enabled';

sub counts {
    my $ua = LWP::UserAgent->new(timeout => 10);
    return [map { $ua->get("$_/count")->content + 0 } @urls];
}

# 8 clients x 60 requests: even requests carry the hot key, odd ones a key
# of their own.  Returns each member's share of them.
sub drive {
    my ($balancer) = @_;
    my $before = counts();
    my $url = Apache::TestRequest::resolve_url("/$balancer/x");
    my @kids;
    for my $c (1 .. 8) {
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            my $ua = LWP::UserAgent->new(keep_alive => 1, timeout => 30);
            for my $n (1 .. 60) {
                $ua->get($url, 'X-Tenant' => $n % 2 ? "cold-$c-$n" : 'hot');
            }
            POSIX::_exit(0);        # not exit: END would stop the members
        }
        push @kids, $pid;
    }
    waitpid $_, 0 for @kids;
    my $after = counts();
    return [map { $after->[$_] - $before->[$_] } 0 .. 2];
}

my $free = drive('hashfree');
my $bound = drive('hashbound');
my $avg = sub { my $t = 0; $t += $_ for @{ $_[0] }; $t / 3 };
my $max = sub { (sort { $b <=> $a } @{ $_[0] })[0] };
diag "without the bound: @$free; with AffinityHashBalanceFactor 125: @$bound";
ok $max->($free) > 1.5 * $avg->($free),
   "without a bound the hot key's member is well above the average (@$free)";
ok $max->($bound) <= 1.25 * $avg->($bound) + 2,
   "with AffinityHashBalanceFactor 125 no member is above 125% of the average (@$bound)";

my $res = Apache::TestRequest::GET('/affinity-status?format=json');
my ($bounded) = 0;
$bounded += $_ for $res->content =~ /"bounded":(\d+)/g;
ok $bounded > 0, "the status page counts the bounded requests ($bounded)";
