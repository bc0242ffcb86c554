# Hash mode's picks are exactly the plain weighted rendezvous order: the
# member the live httpd names for a key (the status page's ?key=, the same
# pick a request makes) against t/unit/rv_pick.c, which computes the choice
# from the pure functions alone (every candidate's cost, ties to the first),
# for 150 keys in each of four states of t/conf/extra.conf.in's hashexact:
# as configured (routes of every length around the 8 bytes the member table
# compares at once), after live route, lbfactor, drain and disable edits
# through balancer-manager, with a spare standing in for the unusable
# members (mod_proxy's walk decides then), and restored.
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use Apache::TestRequest;
use File::Spec;
use IPC::Open2;
use lib 't/lib';
use AffinityTest;

plan tests => 5;

my $top = File::Spec->rel2abs(Apache::Test::vars('serverroot') . '/..');
my $dir = Apache::Test::vars('t_logs') . '/hash-exact';
mkdir $dir;
my $flags = `apr-1-config --includes --cppflags --cflags`;
my $libs = `apr-1-config --link-ld` . ' ' . `apu-1-config --link-ld`;
s/\n/ /g for $flags, $libs;
system("cc -O2 -I$top $flags -o $dir/rv_pick $top/t/unit/rv_pick.c $top/affinity_route.c $libs") == 0
    or BAIL_OUT('cannot build t/unit/rv_pick.c');

my @keys = ((map { "tenant-$_" } 1 .. 140), 'a', 'Z', '0', 'x' x 300, '%41', 'é', 'k k', '-', '.', 'key=1');
my $b = 'hashexact';
sub url { "http://127.0.0.1:$_[0]" }

# The pure function's choice per key among candidates [port, identity, weight].
sub expected {
    my @cands = @_;
    my $pid = open2(my $out, my $in, "$dir/rv_pick", 'exact-salt',
                    map { "$_->[1]=$_->[2]" } @cands);
    print $in "$_\n" for @keys;
    close $in;
    my @idx = map { chomp; $_ } <$out>;
    waitpid $pid, 0;
    return [map { $_ < 0 ? 'none' : url($cands[$_][0]) } @idx];
}

sub live {
    my @got;
    for my $k (@keys) {
        (my $q = $k) =~ s/([^A-Za-z0-9_.~-])/sprintf '%%%02X', ord $1/ge;
        my $body = Apache::TestRequest::GET_BODY("/affinity-status?format=json&key=$q");
        my ($m) = $body =~ m{\{"balancer":"balancer://\Q$b\E","member":"([^"]+)"};
        push @got, $m // 'none';
    }
    return \@got;
}

sub same {
    my ($cands, $what) = @_;
    my ($want, $got) = (expected(@$cands), live());
    my @diff = grep { $want->[$_] ne $got->[$_] } 0 .. $#keys;
    my %on = map { $_ => 1 } @$got;
    ok !@diff && keys %on >= 3, "$what: " . scalar(@keys) . ' keys, each on the pure function\'s member ('
        . scalar(keys %on) . ' members used)'
        or diag join '; ', map { "$keys[$_]: want $want->[$_], got $got->[$_]" } @diff[0 .. ($#diff < 4 ? $#diff : 4)];
}

my $ident = sub { my ($p, $route) = @_; $route // "127.0.0.1:$p" };
my @configured = ([1, $ident->(1), 1], [2, 'r2', 1], [3, 'seven77', 1], [4, 'eight888', 1],
                  [5, 'a-rather-long-route-name-5', 3], [6, $ident->(6), 2], [7, 'r7', 1],
                  [8, $ident->(8), 1]);
same(\@configured, 'as configured');

# routes edited in place (8 bytes to 2, none to 30), a weight, drain, disable
bm_post($b, w => url(4), w_wr => 'e8');
bm_post($b, w => url(1), w_wr => 'a-very-long-route-for-member-1');
bm_post($b, w => url(2), w_lf => 4);
bm_post($b, w => url(7), w_status_N => 1);
bm_post($b, w => url(8), w_status_D => 1);
my @edited = ([1, 'a-very-long-route-for-member-1', 1], [2, 'r2', 4], [3, 'seven77', 1], [4, 'e8', 1],
              [5, 'a-rather-long-route-name-5', 3], [6, $ident->(6), 2]);
same(\@edited, 'after live edits');

# member 6 a hot spare: it stands in for the drained and the disabled one,
# offered after the others (mod_proxy's rule; the module's walk decides)
bm_post($b, w => url(6), w_status_R => 1);
same([@edited[0 .. 4], [6, $ident->(6), 2]], 'a spare standing in');

# the lbset 0 members all disabled: lbset 1's member alone
bm_post($b, w => url($_), w_status_D => 1) for 1 .. 6;
{
    my $got = live();
    ok !(grep { $_ ne url(9) } @$got), 'lbset 0 all disabled: every key on lbset 1\'s member';
}

# restored: as configured again
bm_post($b, w => url($_), w_status_D => 0) for 1 .. 8;
bm_post($b, w => url(6), w_status_R => 0);
bm_post($b, w => url(7), w_status_N => 0);
bm_post($b, w => url(2), w_lf => 1);
bm_post($b, w => url(4), w_wr => 'eight888');
bm_post($b, w => url(1), w_wr => '');
same(\@configured, 'restored');
