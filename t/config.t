# Bad directives stop httpd at startup with a message naming the directive;
# startup warnings; refusing to start without mod_proxy.
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use Apache::TestRequest;
use File::Spec;
use IO::Socket::INET;
use lib 't/lib';
use AffinityTest;

my @bad = (
    ['AffinityCookie "bad name"',           qr/AffinityCookie: "bad name" is not a valid cookie name/],
    ['AffinityCookie "a;b"',                 qr/AffinityCookie: .* not a valid cookie name/],
    ["AffinityCookie ROUTEID \"Path=/\x01\"", qr/AffinityCookie: cookie attributes rejected: .*control/],
    ['AffinitySalt file:/nonexistent/salt',  qr/AffinitySalt: cannot read salt file \/nonexistent\/salt/],
    ['AffinitySalt file:EMPTY',              qr/AffinitySalt: the first line of .* is empty/],
    ['AffinitySalt ""',                      qr/AffinitySalt (?:takes one argument|: empty salt)/],
    ['AffinityMode bogus',                   qr/AffinityMode: unknown mode "bogus"; use cookie, domain, prefix NAME, learn .*or hash EXPR/],
    ['AffinityMode hash',                    qr/AffinityMode hash needs an httpd string expression naming the key/],
    ['AffinityMode hash "%{tolower:"',       qr/AffinityMode hash: cannot parse the expression "%\{tolower:"/],
    ['AffinityMode hash "%{NO_SUCH_VAR}"',   qr/AffinityMode hash: cannot parse the expression .*NO_SUCH_VAR/],
    ['AffinityHashBalanceFactor 100',        qr/AffinityHashBalanceFactor: "100" is not a percentage from 101 to 100000 or Off/],
    ['AffinityHashBalanceFactor 1.5',        qr/AffinityHashBalanceFactor: "1.5" is not a percentage/],
    ['AffinityCookieRemove maybe',           qr/AffinityCookieRemove must be On or Off/],
    ['AffinityNoCache 1',                    qr/AffinityNoCache must be On or Off/],
    ['AffinityCookie',                       qr/AffinityCookie takes 1-2 arguments, cookie name and optional attributes/],
);

plan tests => 2 * @bad + 2 + 5;

my $httpd = Apache::Test::vars('httpd');
my $apxs = Apache::Test::vars('apxs');
chomp(my $libexec = `$apxs -q LIBEXECDIR`);
my $module = File::Spec->rel2abs(Apache::Test::vars('serverroot') . '/../.libs/mod_affinity.so');
my $dir = Apache::Test::vars('t_logs') . '/config-t';
mkdir $dir;
open my $e, '>', "$dir/empty.salt" or die; close $e;
open my $g, '>', "$dir/good.salt" or die; print $g "pepper\n"; close $g;

sub write_conf {
    my ($name, @lines) = @_;
    my $path = "$dir/$name.conf";
    open my $fh, '>', $path or die "$path: $!";
    print $fh join "\n", "ServerRoot \"$dir\"", "ServerName localhost", "ErrorLog \"$dir/$name.log\"",
        "LoadModule mpm_prefork_module $libexec/mod_mpm_prefork.so", @lines, '';
    close $fh;
    return $path;
}

sub run_httpd {
    my @args = @_;
    my $out = `$httpd @args 2>&1`;
    return ($? >> 8, $out);
}

my $i = 0;
for my $case (@bad) {
    my ($directive, $message) = @$case;
    $directive =~ s/EMPTY/$dir\/empty.salt/;
    my $conf = write_conf('bad' . $i++, "LoadModule affinity_module $module", $directive);
    my ($rc, $out) = run_httpd('-t', '-f', $conf);
    (my $shown = $directive) =~ s/[\x00-\x1f]/?/g;
    isnt $rc, 0, "refused at startup: $shown";
    like $out, $message, 'with a message naming the directive';
}

my $proxy = "LoadModule proxy_module $libexec/mod_proxy.so";
my $good = write_conf('good', $proxy, "LoadModule affinity_module $module",
    'AffinityCookie SRV "Secure"', 'AffinitySalt random', 'AffinityMode domain',
    'AffinityCookieRemove On', 'AffinityNoCache Off',
    '<Proxy balancer://x>', 'AffinitySalt file:good.salt', '</Proxy>');
my ($rc, $out) = run_httpd('-t', '-f', $good);
ok $rc == 0 && $out =~ /Syntax OK/, 'a good configuration passes' or diag $out;
my $relative = write_conf('relative', $proxy, "LoadModule affinity_module $module",
    '<Proxy balancer://x>', 'AffinitySalt file:missing.salt', '</Proxy>');
($rc, $out) = run_httpd('-t', '-f', $relative);
like $out, qr/AffinitySalt: cannot read salt file \Q$dir\E\/missing\.salt/,
    'a relative salt file is resolved against ServerRoot, in <Proxy> too';

# Without mod_proxy the module refuses to start (post_config).
my $port = IO::Socket::INET->new(LocalAddr => '127.0.0.1', Listen => 1)->sockport;
my $noproxy = write_conf('noproxy', "LoadModule affinity_module $module",
    "Listen 127.0.0.1:$port", "PidFile $dir/noproxy.pid", "ErrorLog $dir/noproxy.log");
($rc, $out) = run_httpd('-X', '-f', $noproxy);
my $log = do { local $/; open my $fh, '<', "$dir/noproxy.log"; <$fh> // '' };
ok $rc != 0 && ($out . $log) =~ /AFF0001: mod_proxy and mod_proxy_balancer .* must be loaded/,
    'without mod_proxy, httpd refuses to start and says why';

# Warnings of the running test server.
my $errors = error_log_text();
like $errors, qr/AFF0002: balancer:\/\/warnsticky uses lbmethod=affinity together with stickysession=ROUTEID/,
    'stickysession together with affinity is warned about';
like $errors, qr{AFF0003: balancer://warntwins: members http://127\.0\.0\.1:\d+/one/ and http://127\.0\.0\.1:\d+/two/ share the identity},
    'two members with one identity are named';
unlike $errors, qr/AFF0003: balancer:\/\/(?!warntwins)/, 'no other balancer is warned about';
unlike $errors, qr/AFF0002: balancer:\/\/(?!warnsticky)/, 'nor for stickysession';
