# Debian loads mods-enabled/*.load alphabetically: affinity.load before
# proxy.load.  t/run's prefork run loads mod_affinity first, so the whole
# suite runs in that order there; this file checks the order really is so.
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use Apache::TestRequest;
use lib 't/lib';
use AffinityTest;

plan tests => 3;

my $mpm = Apache::Test::config()->{server}{mpm} // '';
my $conf = do {
    local $/;
    open my $fh, '<', Apache::Test::vars('t_conf_file') or die $!;
    <$fh>;
};
my $affinity = index $conf, 'LoadModule affinity_module';
my $proxy = index $conf, 'LoadModule proxy_module';

if ($mpm eq 'prefork') {
    ok $affinity >= 0 && $proxy > $affinity,
        'prefork run: mod_affinity is loaded before mod_proxy'
        or diag join "\n", grep { /LoadModule|Include/ } split /\n/, $conf;
}
else {
    ok $affinity < 0 && $proxy >= 0,
        "$mpm run: mod_affinity is loaded after mod_proxy (extra.conf)";
}
my $r = fetch('/app/hello.txt');
ok $r->code == 200 && cookie_value($r), 'the affinity balancer works in this order';
my $id = cookie_value($r);
is backend(fetch('/app/hello.txt', Cookie => "ROUTEID=$id")), backend($r),
    'and sticks';
