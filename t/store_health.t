# Store health (issue 24): learn mode's store on the status page and in the
# error log, under a real outage.  For memcached and Redis, started here on
# free 127.0.0.1 ports, behind a private event front end (t/lib/LearnHarness.pm)
# with two children: sessions are learned, the store is killed, requests go
# on, the store is started again, requests go on.  The Prometheus series
# move (lookups and writes up; errors up and affinity_store_up 0 during the
# outage; 1 after), every scrape passes promtool, the JSON and the HTML show
# the state, AFF0091 says what failed in words (not APR's "Internal
# error") and AFF0110 says once that the store is back.
# Runs in the suite's event pass only (it starts its own front end).
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use File::Spec;
use File::Path qw(remove_tree);
use File::Temp qw(tempfile);
use JSON::PP;
use Time::HiRes qw(sleep time);
use lib 't/lib';
use LearnHarness;

my $mpm = Apache::Test::config()->{server}{mpm} // '';
my @stores = ((LearnHarness::have_memcached() ? 'memcache' : ()),
              (LearnHarness::have_redis() ? 'redis' : ()));
if ($mpm ne 'event') {
    plan skip_all => 'runs its own front end: once, in the event pass';
}
plan tests => 5 + 16 * @stores, need { 'memcached or redis-server (tools/setup installs them)' => scalar @stores };

my $module = File::Spec->rel2abs(Apache::Test::vars('serverroot') . '/../.libs/mod_affinity.so');
my $top = File::Spec->rel2abs(Apache::Test::vars('t_logs') . '/store-health');
remove_tree($top);
my $RUN = "$$-" . int(rand(1e6));
my (@fes, @daemons);
END {
    LearnHarness::stop($_) for @fes;
    LearnHarness::stop_store($_) for @daemons;
}

my @status = ('<Location /affinity-status>', '    SetHandler affinity-status',
              '</Location>');

sub get { LearnHarness::get(@_) }
sub backend { LearnHarness::backend($_[0]) }

# { series{labels} => value } of the store's series
sub metrics {
    my ($fe) = @_;
    my $text = get($fe, '/affinity-status?format=prometheus')->content;
    my %m;
    for (split /\n/, $text) {
        $m{$1} = $2 if /^(affinity_store_\w+)\{[^}]*\} (\S+)$/;
    }
    return (\%m, $text);
}

sub promtool_ok {
    my ($text, $name) = @_;
    my $promtool = `sh -c 'command -v promtool'`;
    chomp $promtool;
    SKIP: {
        skip 'promtool not installed (Debian package prometheus)', 1 unless $promtool;
        my ($fh, $file) = tempfile();
        print $fh $text;
        close $fh;
        my $out = `$promtool check metrics < $file 2>&1`;
        ok($? == 0, $name) or diag $out;
        unlink $file;
    }
}

# the local tier's directive and its provider, at apache2ctl -t
{
    my $c = LearnHarness::frontend(dir => "$top/badlocal", module => $module,
                                   store => 'redis:127.0.0.1:1', extra => ['AffinityStoreLocal 12x']);
    my ($rc, $out) = LearnHarness::httpd_run($c, '-t');
    ok($rc != 0 && $out =~ /AffinityStoreLocal: "12x" is not a size in bytes from 65536/,
       'AffinityStoreLocal 12x: refused, naming the directive') or diag $out;
    $c = LearnHarness::frontend(dir => "$top/noshmcb", module => $module,
                                store => 'redis:127.0.0.1:1', skip_modules => ['socache_shmcb']);
    ($rc, $out) = LearnHarness::httpd_run($c, '-t');
    ok($rc == 0, 'redis without mod_socache_shmcb: still starts');
    my @w = $out =~ /(AFF0111: [^\n]*)/g;
    ok(@w == 1 && $w[0] =~ /no local tier.*a2enmod socache_shmcb.*AffinityStoreLocal 0/,
       'and says once that it has no local tier, and how to get one (AFF0111)') or diag $out;
    $c = LearnHarness::frontend(dir => "$top/noshmcb2", module => $module,
                                store => 'redis:127.0.0.1:1', skip_modules => ['socache_shmcb'],
                                extra => ['AffinityStoreLocal 1048576']);
    ($rc, $out) = LearnHarness::httpd_run($c, '-t');
    ok($rc != 0 && $out =~ /AFF0090: AffinityStoreLocal at \S+:\d+: .*LoadModule socache_shmcb_module/,
       'an explicit AffinityStoreLocal without mod_socache_shmcb: refused, naming the line and the fix')
        or diag $out;
    $c = LearnHarness::frontend(dir => "$top/nolocal", module => $module,
                                store => 'redis:127.0.0.1:1', skip_modules => ['socache_shmcb'],
                                extra => ['AffinityStoreLocal 0']);
    ($rc, $out) = LearnHarness::httpd_run($c, '-t');
    ok($rc == 0 && $out !~ /AFF0111/, 'AffinityStoreLocal 0: no tier wanted, no warning') or diag $out;
}

for my $kind (@stores) {
    my $store = LearnHarness::start_store($kind, "$top/$kind-daemon");
    push @daemons, $store;
    my $fe = LearnHarness::frontend(dir => "$top/$kind", module => $module, mpm => 'event',
                                    store => $store->{spec},
                                    # every request asks the store (no
                                    # cache of its answers): counted, and
                                    # failing while it is down
                                    extra => [@status, 'ProxyPass /affinity-status !',
                                              'AffinityStoreCacheTime 0']);
    push @fes, $fe;
    ok(LearnHarness::start($fe), "$kind: a front end starts") or diag $LearnHarness::LAST_ERROR;

    my %s = map { my $v = "h$_-$kind-$RUN"; ($v => LearnHarness::learn_session($fe, $v)) } 1 .. 10;
    get($fe, '/app/hello.txt', Cookie => "SID=$_") for keys %s;
    my ($m, $text) = metrics($fe);
    ok($m->{affinity_store_lookups_total} >= 10 && $m->{affinity_store_writes_total} >= 10,
       "$kind: lookups and writes are counted")
        or diag explain $m;
    ok($m->{affinity_store_up} == 1 && $m->{affinity_store_errors_total} == 0
       && $m->{affinity_store_last_error_timestamp_seconds} == 0,
       "$kind: store up, no error yet") or diag explain $m;
    promtool_ok($text, "$kind: promtool accepts the scrape (store up)");

    # the outage: the store killed, requests carrying sessions go on
    LearnHarness::stop_store($store);
    my $t0 = time;
    get($fe, '/app/hello.txt', Cookie => "SID=$_") for (keys %s) x 3;
    my ($d, $dtext) = metrics($fe);
    ok($d->{affinity_store_errors_total} > 0 && $d->{affinity_store_up} == 0,
       "$kind: store down: errors counted, affinity_store_up 0") or diag explain $d;
    ok($d->{affinity_store_last_error_timestamp_seconds} >= int($t0) - 1
       && $d->{affinity_store_last_error_timestamp_seconds} <= time + 1,
       "$kind: the time of the last error is now") or diag explain $d;
    promtool_ok($dtext, "$kind: promtool accepts the scrape (store down)");
    my $json = eval { decode_json(get($fe, '/affinity-status?format=json')->content) } // {};
    ok($json->{store} && !$json->{store}{up} && $json->{store}{errors} > 0
       && $json->{store}{down_since}, "$kind: the JSON says the store is down, and since when")
        or diag explain $json->{store};
    like(get($fe, '/affinity-status')->content, qr{Learn-mode store.*class="bad">down since}s,
         "$kind: the HTML page says it is down");

    # back
    LearnHarness::restart_store($store);
    sleep 0.3;
    get($fe, '/app/hello.txt', Cookie => "SID=$_") for (keys %s) x 2;
    my ($u, $utext) = metrics($fe);
    ok($u->{affinity_store_up} == 1, "$kind: the store is back: affinity_store_up 1")
        or diag explain $u;
    ok($u->{affinity_store_lookups_total} > $d->{affinity_store_lookups_total},
       "$kind: lookups go on");
    promtool_ok($utext, "$kind: promtool accepts the scrape (store back)");
    like(get($fe, '/affinity-status')->content, qr{Learn-mode store.*class="ok">up}s,
         "$kind: the HTML page says it is up");

    my $log = LearnHarness::error_log($fe);
    my @down = $log =~ /(AFF0091: [^\n]*)/g;
    my @back = $log =~ /(AFF0110: [^\n]*)/g;
    is(scalar @back, 1, "$kind: the return is logged once (AFF0110), for both children")
        or diag join "\n", @back;
    ok(@down == 1 && $down[0] !~ /Internal error|\(\d+\)/
       && $down[0] =~ /\Q$store->{spec}\E failed a (lookup|write) \([A-Za-z]/
       && $down[0] =~ /hashes to/ && $down[0] =~ /Check that the store runs/,
       "$kind: AFF0091 says what failed, which store, what requests get and what to check")
        or diag join "\n", @down;
    like($back[0] // '', qr/AFF0110: learn mode's store \Q$store->{spec}\E answers again, \d+ s after/,
         "$kind: AFF0110 names the store and the outage's length");
    LearnHarness::stop($fe);
    LearnHarness::stop_store($store);
}
