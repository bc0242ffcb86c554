# The configuration check: every trap is named by `httpd -t` and at startup
# (and at a graceful restart), with its tag and the file and line; a correct
# configuration gets no AFF warning at all; AffinityWarnings turns one off.
# Then what the check leads to at run time: a virtual host's copy of a
# server-level balancer sticks, and a flood of nofailover 503s writes a
# bounded number of warnings.
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use Apache::TestRequest;
use File::Spec;
use IO::Socket::INET;
use Time::HiRes qw(time sleep);
use lib 't/lib';
use AffinityTest;

my $httpd = Apache::Test::vars('httpd');
my $apxs = Apache::Test::vars('apxs');
chomp(my $libexec = `$apxs -q LIBEXECDIR`);
my $module = File::Spec->rel2abs(Apache::Test::vars('serverroot') . '/../.libs/mod_affinity.so');
my $dir = Apache::Test::vars('t_logs') . '/checks-t';
mkdir $dir;
open my $sf, '>', "$dir/salt.txt" or die; print $sf "pepper\n"; close $sf;

sub free_port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', Listen => 1) or die $!;
    return $s->sockport;
}

# A configuration of its own; returns its path.  @lines may use PORT.
my $port = free_port();
sub write_conf {
    my ($name, @lines) = @_;
    my $path = "$dir/$name.conf";
    s/PORT/$port/g for @lines;
    open my $fh, '>', $path or die "$path: $!";
    print $fh join "\n", "ServerRoot \"$dir\"", 'ServerName localhost',
        "ErrorLog \"$dir/$name.log\"", "PidFile \"$dir/$name.pid\"",
        "Listen 127.0.0.1:$port",
        (map { "LoadModule ${_}_module $libexec/mod_$_.so" }
             qw(mpm_prefork authz_core authz_host setenvif headers proxy proxy_http proxy_balancer
                slotmem_shm lbmethod_byrequests)),
        "LoadModule affinity_module $module", 'StartServers 1',
        @lines, '';
    close $fh;
    return $path;
}

# The line of a configuration file that holds $text.
sub line_of {
    my ($path, $text) = @_;
    open my $fh, '<', $path or die;
    while (<$fh>) { return $. if index($_, $text) >= 0 }
    die "$text not in $path";
}

sub syntax_check {
    my ($conf) = @_;
    my $out = `$httpd -t -f $conf 2>&1`;
    return ($? >> 8, $out);
}

sub read_file { my $f = shift; open my $fh, '<', $f or return ''; local $/; <$fh> }

# Start, optionally restart gracefully, stop; returns the error log.
sub run_server {
    my ($conf, $name, $graceful) = @_;
    my ($pidfile, $log) = ("$dir/$name.pid", "$dir/$name.log");
    unlink $log;
    system($httpd, '-f', $conf, '-k', 'start') == 0 or return '';
    wait_until(30, sub { -s $pidfile && read_file($log) =~ /resuming normal operations/ });
    if ($graceful) {
        system($httpd, '-f', $conf, '-k', 'graceful');
        wait_until(30, sub { my @n = read_file($log) =~ /resuming normal operations/g; @n >= 2 });
    }
    system($httpd, '-f', $conf, '-k', 'stop');
    wait_until(30, sub { !-e $pidfile });
    return read_file($log);
}

my $member = 'BalancerMember "http://127.0.0.1:1"';

# name => [tag, text the line is found by, what the message says, config...]
my @traps = (
    [salt => 40, 'AffinitySalt /etc', qr/did you mean AffinitySalt file:\/etc\/apache2\/affinity\.salt/,
        '<Proxy "balancer://app">', $member, 'ProxySet lbmethod=affinity',
        'AffinitySalt /etc/apache2/affinity.salt', '</Proxy>', 'ProxyPass "/app" "balancer://app"'],
    [saltfile => 40, 'AffinitySalt salt.txt', qr/did you mean AffinitySalt file:salt\.txt/,
        '<Proxy "balancer://app">', $member, 'ProxySet lbmethod=affinity',
        'AffinitySalt salt.txt', '</Proxy>', 'ProxyPass "/app" "balancer://app"'],
    [shared => 41, undef, qr/balancer:\/\/app \(at \/app\) and balancer:\/\/api \(at \/api\) in the main server both use the cookie ROUTEID with Path=\//,
        '<Proxy "balancer://app">', $member, 'ProxySet lbmethod=affinity', '</Proxy>',
        '<Proxy "balancer://api">', 'BalancerMember "http://127.0.0.1:2"', 'ProxySet lbmethod=affinity', '</Proxy>',
        'ProxyPass "/app" "balancer://app"', 'ProxyPass "/api" "balancer://api"'],
    [sharedvhost => 41, 'AffinityCookie SID', qr/in virtual host .*both use the cookie SID with Path=\/x/,
        '<VirtualHost *:PORT>',
        '<Proxy "balancer://app">', $member, 'ProxySet lbmethod=affinity', '</Proxy>',
        '<Proxy "balancer://api">', 'BalancerMember "http://127.0.0.1:2"', 'ProxySet lbmethod=affinity', '</Proxy>',
        '<Proxy "balancer://">', 'AffinityCookie SID "Path=/x"', '</Proxy>',
        'ProxyPass "/x/app" "balancer://app"', 'ProxyPass "/x/api" "balancer://api"', '</VirtualHost>'],
    [nolbmethod => 42, 'AffinityCookie APP', qr/AffinityCookie in <Proxy balancer:\/\/app> has no effect: balancer:\/\/app uses lbmethod=byrequests, not affinity; add ProxySet lbmethod=affinity/,
        '<Proxy "balancer://app">', $member, 'AffinityCookie APP', '</Proxy>', 'ProxyPass "/app" "balancer://app"'],
    [typo => 42, 'AffinitySalt s3cret', qr/AffinitySalt in <Proxy balancer:\/\/apq> has no effect: no balancer of that name is defined/,
        '<Proxy "balancer://app">', $member, 'ProxySet lbmethod=affinity', '</Proxy>',
        '<Proxy "balancer://apq">', 'AffinitySalt s3cret', '</Proxy>', 'ProxyPass "/app" "balancer://app"'],
    [maxage => 43, 'Max-Age', qr/AffinityCookie ROUTEID: the attributes hold Max-Age, but the cookie is sent only when the route changes/,
        '<Proxy "balancer://app">', $member, 'ProxySet lbmethod=affinity',
        'AffinityCookie ROUTEID "Path=/; Max-Age=4"', '</Proxy>', 'ProxyPass "/app" "balancer://app"'],
    [expires => 43, 'Expires', qr/the attributes hold Expires/,
        '<Proxy "balancer://app">', $member, 'ProxySet lbmethod=affinity',
        'AffinityCookie ROUTEID "Path=/; Expires=Wed, 21 Oct 2037 07:28:00 GMT"', '</Proxy>', 'ProxyPass "/app" "balancer://app"'],
    [secure => 44, 'Secure', qr/the cookie ROUTEID of balancer:\/\/app is Secure, but virtual host .* serves plain http \(mod_ssl is not loaded\)/,
        '<VirtualHost *:PORT>', '<Proxy "balancer://app">', $member, 'ProxySet lbmethod=affinity',
        'AffinityCookie ROUTEID "Path=/; Secure"', '</Proxy>', 'ProxyPass "/app" "balancer://app"', '</VirtualHost>'],
    [domain => 45, 'AffinityCookieRemove', qr/AffinityCookieRemove in <Proxy balancer:\/\/sites> has no effect: AffinityMode domain is in force there/,
        '<Proxy "balancer://sites">', $member, 'ProxySet lbmethod=affinity', 'AffinityMode domain',
        'AffinityCookieRemove On', '</Proxy>', 'ProxyPass "/" "balancer://sites/"'],
    [prefixcookie => 45, 'AffinityCookie SHOPROUTE', qr/AffinityCookie in <Proxy balancer:\/\/shop> has no effect: AffinityMode prefix is in force there/,
        '<Proxy "balancer://shop">', $member, 'ProxySet lbmethod=affinity', 'AffinityMode prefix JSESSIONID',
        'AffinityCookie SHOPROUTE', 'AffinityNoCache On', '</Proxy>', 'ProxyPass "/shop" "balancer://shop"'],
    # the bound where nothing is hashed: in the section, and server-wide
    [boundcookie => 132, 'AffinityHashBalanceFactor 150', qr/AffinityHashBalanceFactor 150 has no effect for balancer:\/\/app at \/app in the main server: AffinityMode cookie is in force there, and the bound applies only to hash and domain mode/,
        '<Proxy "balancer://app">', $member, 'ProxySet lbmethod=affinity',
        'AffinityHashBalanceFactor 150', '</Proxy>', 'ProxyPass "/app" "balancer://app"'],
    [boundprefix => 132, 'AffinityHashBalanceFactor 125', qr/AffinityHashBalanceFactor 125 has no effect for balancer:\/\/shop at \/shop in the main server: AffinityMode prefix is in force there/,
        'AffinityHashBalanceFactor 125',
        '<Proxy "balancer://shop">', $member, 'ProxySet lbmethod=affinity', 'AffinityMode prefix JSESSIONID',
        '</Proxy>', 'ProxyPass "/shop" "balancer://shop"'],
    [path => 47, 'Path=/shop', qr/balancer:\/\/app is reached at \/app in the main server, but its cookie ROUTEID has Path=\/shop: the browser never sends it back there/,
        '<Proxy "balancer://app">', $member, 'ProxySet lbmethod=affinity',
        'AffinityCookie ROUTEID "Path=/shop"', '</Proxy>', 'ProxyPass "/app" "balancer://app"'],
    [idle => 48, 'AffinityCookieMaxIdle 7200', qr/AffinityCookieMaxIdle 7200 is not shorter than AffinityCookieMaxLife 3600: every session reaches its MaxLife first/,
        'AffinitySalt s3cret', 'AffinityCookieMaxLife 3600',
        '<Proxy "balancer://app">', $member, 'ProxySet lbmethod=affinity',
        'AffinityCookieMaxIdle 7200', '</Proxy>', 'ProxyPass "/app" "balancer://app"'],
    # the stock recipe's line, left behind by a migration
    [header => 49, 'Header add Set-Cookie', qr/Header add Set-Cookie reaches balancer:\/\/app \(at \/app in the main server\), which sets its route cookie itself: a new client gets a second ROUTEID cookie .*; remove this line/,
        '<Proxy "balancer://app">', $member, 'ProxySet lbmethod=affinity', '</Proxy>',
        'ProxyPass "/app" "balancer://app"',
        'Header add Set-Cookie "ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/" env=BALANCER_ROUTE_CHANGED'],
    # keyed on BALANCER_ROUTE_CHANGED, another cookie name, in a <Location>
    [headerenv => 49, 'Header always set', qr/Header set Set-Cookie reaches balancer:\/\/app \(at \/shop\/ in virtual host .*it is the stock stickysession recipe \(env=BALANCER_ROUTE_CHANGED\)/,
        '<VirtualHost *:PORT>',
        '<Proxy "balancer://app">', $member, 'ProxySet lbmethod=affinity', 'AffinityCookie APPROUTE', '</Proxy>',
        'ProxyPass "/shop/" "balancer://app/"',
        '<Location "/shop/">', 'Header always set Set-Cookie "SRV=%{BALANCER_WORKER_ROUTE}e" env=BALANCER_ROUTE_CHANGED', '</Location>',
        '</VirtualHost>'],
    # the status page pasted after an existing ProxyPass "/"
    [statuspage => 50, '<Location "/affinity-status">', qr/<Location \/affinity-status> with SetHandler affinity-status in virtual host .* is covered by ProxyPass \/ balancer:\/\/app\/ \(\Q$dir\E\/statuspage\.conf:\d+\): its requests go to balancer:\/\/app\/, never to the status page; put ProxyPass "\/affinity-status" "!" before that ProxyPass/,
        '<Proxy "balancer://app">', $member, 'ProxySet lbmethod=affinity', '</Proxy>',
        '<VirtualHost *:PORT>', 'ProxyPass "/" "balancer://app/"',
        '<Location "/affinity-status">', 'SetHandler affinity-status', 'Require local', '</Location>',
        '</VirtualHost>'],
    [statusmatch => 50, '<Location "/affinity-status">', qr/is covered by ProxyPassMatch \^\/\(\.\*\)\$ balancer:\/\/app\/\$1/,
        '<Proxy "balancer://app">', $member, 'ProxySet lbmethod=affinity', '</Proxy>',
        '<VirtualHost *:PORT>',
        # an exclusion that does not cover /affinity-status itself
        'ProxyPass "/affinity-status/" "!"',
        'ProxyPassMatch "^/(.*)$" "balancer://app/$1"',
        '<Location "/affinity-status">', 'SetHandler affinity-status', 'Require local', '</Location>',
        '</VirtualHost>'],
    [sticky => 2, undef, qr/balancer:\/\/app uses lbmethod=affinity together with stickysession=ROUTEID/,
        '<Proxy "balancer://app">', $member, 'ProxySet lbmethod=affinity stickysession=ROUTEID', '</Proxy>',
        'ProxyPass "/app" "balancer://app"'],
    [twins => 3, undef, qr/balancer:\/\/app: members http:\/\/127\.0\.0\.1:1 and http:\/\/127\.0\.0\.1:2 share the identity "same"/,
        '<Proxy "balancer://app">', "$member route=same", 'BalancerMember "http://127.0.0.1:2" route=same',
        'ProxySet lbmethod=affinity', '</Proxy>', 'ProxyPass "/app" "balancer://app"'],
);

# A configuration that makes none of these mistakes: several balancers,
# virtual hosts, a vhost using a server-level balancer, domain mode, salts.
my @clean = (
    '<Proxy "balancer://app">', $member, 'BalancerMember "http://127.0.0.1:2"',
    'ProxySet lbmethod=affinity', 'AffinitySalt file:salt.txt', 'AffinityCookie APPROUTE', '</Proxy>',
    '<Proxy "balancer://api">', 'BalancerMember "http://127.0.0.1:3"', 'ProxySet lbmethod=affinity',
    'AffinitySalt s3cret', 'AffinityCookie ROUTEID "Path=/api; HttpOnly"', 'AffinityNoCache On',
    'AffinityCookieMaxIdle 1800', 'AffinityCookieMaxLife 28800', '</Proxy>',
    '<Proxy "balancer://legacy">', 'BalancerMember "http://127.0.0.1:4"', 'ProxySet lbmethod=byrequests', '</Proxy>',
    '<Proxy "balancer://sites">', 'BalancerMember "http://127.0.0.1:5"', 'ProxySet lbmethod=affinity',
    'AffinityMode domain', 'AffinityHashBalanceFactor 150', '</Proxy>',
    # the bound where it applies, and Off where it would not
    '<Proxy "balancer://tenants">', 'BalancerMember "http://127.0.0.1:9"', 'ProxySet lbmethod=affinity',
    'AffinityMode hash "%{HTTP:X-Tenant}"', 'AffinityHashBalanceFactor 125', '</Proxy>',
    'ProxyPass "/tenants/" "balancer://tenants/"',
    '<Proxy "balancer://plain">', 'BalancerMember "http://127.0.0.1:10"', 'ProxySet lbmethod=affinity',
    'AffinityHashBalanceFactor Off', 'AffinityCookie PLAIN "Path=/plain/"', '</Proxy>',
    'ProxyPass "/plain/" "balancer://plain/"',
    'ProxyPass "/app/" "balancer://app/"', 'ProxyPass "/api/" "balancer://api/"',
    'ProxyPass "/legacy/" "balancer://legacy/"',
    # the stock recipe where it belongs: a byrequests balancer's own path
    '<Location "/legacy/">',
    'Header add Set-Cookie "ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/legacy/" env=BALANCER_ROUTE_CHANGED',
    '</Location>',
    # other Set-Cookie and header rules reach the affinity balancers harmlessly
    'Header always set X-Frame-Options DENY', 'Header add Set-Cookie "THEME=dark; Path=/"',
    '<VirtualHost *:PORT>', 'ServerName sites.example',
    # the status page next to ProxyPass "/", excluded first
    'ProxyPass "/affinity-status" "!"', 'ProxyPass "/" "balancer://sites/"',
    '<Location "/affinity-status">', 'SetHandler affinity-status', 'Require local', '</Location>',
    '</VirtualHost>',
    '<VirtualHost *:PORT>', 'ServerName shop.example',
    '<Proxy "balancer://shop">', 'BalancerMember "http://127.0.0.1:6"', 'ProxySet lbmethod=affinity',
    'AffinityCookie SHOP "Path=/; HttpOnly; Secure"', 'AffinityCookieRemove On', '</Proxy>',
    'ProxyPass "/" "balancer://shop/"',
    '# TLS ends at the load balancer in front:',
    'SetEnvIf X-Forwarded-Proto "^https$" HTTPS=on', '</VirtualHost>',
    '<VirtualHost *:PORT>', 'ServerName app.example', 'ProxyPass "/app/" "balancer://app/"', '</VirtualHost>',
    # two prefix-mode balancers: no route cookie, so no cookie to share
    '<VirtualHost *:PORT>', 'ServerName php.example',
    '<Proxy "balancer://php1">', 'BalancerMember "http://127.0.0.1:7"', 'ProxySet lbmethod=affinity',
    'AffinityMode prefix PHPSESSID', 'AffinityNoCache On', '</Proxy>',
    '<Proxy "balancer://php2">', 'BalancerMember "http://127.0.0.1:8"', 'ProxySet lbmethod=affinity',
    'AffinityMode prefix PHPSESSID', '</Proxy>',
    'ProxyPass "/one/" "balancer://php1/"', 'ProxyPass "/two/" "balancer://php2/"', '</VirtualHost>',
);

plan tests => 6 * @traps + 13;

my %all_tags;
for my $t (@traps) {
    my ($name, $tag, $text, $says, @lines) = @$t;
    my $aff = sprintf 'AFF%04d', $tag;
    $all_tags{$aff} = 1;
    my $conf = write_conf($name, @lines);
    my ($rc, $out) = syntax_check($conf);
    my $where = defined $text ? "\Q$conf\E:" . line_of($conf, $text) . ': ' : '';
    ok $rc == 0 && $out =~ /Syntax OK/, "$name: httpd -t passes (a warning, not an error)" or diag $out;
    like $out, qr/\Q$aff\E: $where.*$says/, "$name: httpd -t says $aff" . ($where ? ' with file and line' : '');
    my @tags = $out =~ /(AFF\d{4})/g;
    is_deeply [sort keys %{{ map { $_ => 1 } @tags }}], [$aff], "$name: and nothing else";

    # AffinityWarnings -AFFnnnn at server level turns it off
    my $quiet = write_conf("$name-quiet", "AffinityWarnings -$aff", @lines);
    ($rc, $out) = syntax_check($quiet);
    ok $rc == 0 && $out !~ /AFF\d{4}/, "$name: AffinityWarnings -$aff silences it" or diag $out;

    # and the same mistake is said at startup, in the error log
    my $log = run_server($conf, $name, 0);
    like $log, qr/\Q$aff\E: $where.*$says/, "$name: said at startup too";
    # inside the section (or vhost) the warning is about, it also works
    my @inner = @lines;
    my ($i) = reverse grep { $inner[$_] =~ /^<(Proxy|VirtualHost)/ } 0 .. $#inner;
    splice @inner, $i + 1, 0, "AffinityWarnings -$aff" if defined $i;
    my $inner = write_conf("$name-inner", @inner);
    ($rc, $out) = syntax_check($inner);
    ok !defined $i || $out !~ /\Q$aff\E/, "$name: silenced inside the section too" or diag $out;
}

# A graceful restart says it again: every start and restart runs the check.
{
    my $conf = write_conf('restart', @{ $traps[0] }[4 .. $#{ $traps[0] }]);
    my $log = run_server($conf, 'restart', 1);
    my @n = $log =~ /AFF0040/g;
    is scalar @n, 2, 'said at startup and again at a graceful restart';
}

# The correct configuration: no AFF line at all, at -t or at startup.
{
    my $conf = write_conf('clean', @clean);
    my ($rc, $out) = syntax_check($conf);
    ok $rc == 0 && $out =~ /Syntax OK/ && $out !~ /AFF\d{4}/, 'a correct configuration: no AFF warning at -t' or diag $out;
    my $log = run_server($conf, 'clean', 0);
    like $log, qr/resuming normal operations/, 'it starts';
    # (AFF0020, the version, is a notice)
    unlike $log, qr/\[affinity:(?:warn|error|crit|alert|emerg)\]|AFF00(?:0[23]|4\d)/,
        'and says no AFF warning at startup';
    # the server-level balancer used from app.example is adopted (AFF0046, info)
    my $info = write_conf('clean-info', 'LogLevel info', @clean);
    ($rc, $out) = syntax_check($info);
    like $out, qr/AFF0046: virtual host app\.example:\d+ \(\Q$info\E:\d+\): balancer:\/\/app is defined at server level with lbmethod=affinity/,
        'a vhost copy of a server-level affinity balancer is given lbmethod=affinity (info)';
    my $explicit = write_conf('explicit', 'LogLevel info', @clean,
        '<VirtualHost *:PORT>', 'ServerName other.example',
        'ProxyPass "/app/" "balancer://app/" lbmethod=byrequests', '</VirtualHost>');
    ($rc, $out) = syntax_check($explicit);
    unlike $out, qr/AFF0046: virtual host other\.example/, 'unless the vhost chose its own lbmethod';
}

# Turning off what cannot be a warning is an error naming the directive.
{
    my $conf = write_conf('unknown', 'AffinityWarnings -AFF0011');
    my ($rc, $out) = syntax_check($conf);
    ok $rc != 0 && $out =~ /AffinityWarnings: "-AFF0011" is not a warning that can be turned off/,
        'AffinityWarnings with a tag that is not a warning stops httpd' or diag $out;
}

# ---- At run time ----------------------------------------------------------

# The virtual host's copy of the server-level balancer sticks (it was
# byrequests before: no cookie at all).
{
    Apache::TestRequest::module('affinity_inherit');
    my $res = fetch('/inherited/index.html');
    my $id = cookie_value($res);
    ok defined $id && $id =~ /^[0-9a-f]{40}$/, 'a vhost using a server-level balancer gets the cookie'
        or diag $res->as_string;
    my $first = backend($res);
    my @same = grep { $_ } map {
        my $r = fetch('/inherited/index.html', Cookie => "ROUTEID=$id");
        backend($r) eq $first && !affinity_cookies($r);
    } 1 .. 6;
    is scalar @same, 6, 'and sticks to its member';
    Apache::TestRequest::module('default');
}

# AFF0007 (trace1) says whether a value was malformed or an unknown ID.
{
    fetch('/app/index.html', Cookie => 'ROUTEID=' . ('A' x 40));
    fetch('/app/index.html', Cookie => 'ROUTEID=' . ('a' x 40) . '; ROUTEID=xyz');
    my $log = '';
    wait_until(5, sub { $log = error_log_text(); $log =~ /AFF0007: .*unknown value/ });
    like $log, qr/AFF0007: balancer:\/\/app: cookie ROUTEID malformed \(not an ID, a dated ID or a stock route\), new session/,
        'AFF0007 names an uppercase ID malformed';
    like $log, qr/AFF0007: balancer:\/\/app: cookie ROUTEID names no member \(1 unknown value\(s\), 1 malformed value\(s\)\), new session/,
        'and a well-formed ID that names no member unknown';
}

# 10,000 requests whose member is disabled, with nofailover: 503 each, and
# at most one AFF0009 warning per process every 10 seconds.
{
    my $id = route_id('', '127.0.0.1:1');
    my $hostport = Apache::TestRequest::hostport();
    my ($host, $hport) = split /:/, $hostport;
    # bounded in time: a loaded machine (or valgrind) may not make all 10,000
    my ($sent, $n503, $deadline) = (0, 0, time + 120);
    my $before = () = error_log_text() =~ /\[affinity:warn\].*AFF0009/g;
    my $start = time;
    my $req = "GET /flood/ HTTP/1.1\r\nHost: $hostport\r\nCookie: ROUTEID=$id\r\n\r\n";
    CONN: while ($sent < 10000 && time < $deadline) {
        my $sock = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $hport) or last;
        while ($sent < 10000 && time < $deadline) {
            print $sock $req or next CONN;
            $sent++;
            my $head = '';
            while ($head !~ /\r\n\r\n/) {
                my $got = sysread($sock, my $buf, 4096);
                next CONN unless $got;
                $head .= $buf;
            }
            my ($h, $body) = split /\r\n\r\n/, $head, 2;
            my ($len) = $h =~ /Content-Length:\s*(\d+)/i;
            while (length($body) < ($len // 0)) {
                my $got = sysread($sock, my $buf, 4096);
                next CONN unless $got;
                $body .= $buf;
            }
            $n503++ if $h =~ /^HTTP\/1\.1 503/;
            next CONN if $h =~ /Connection:\s*close/i;
        }
    }
    my $seconds = time - $start;
    ok $n503 == $sent && ($sent == 10000 || (time >= $deadline && $sent >= 1000)),
        "$sent requests to a nofailover balancer whose member is disabled: $n503 503s";
    my @lines;
    wait_until(5, sub { @lines = grep { /\[affinity:warn\].*AFF0009/ } error_log_text() =~ /^.*$/mg; 1 });
    splice @lines, 0, $before;
    my %pids = map { /\[pid (\d+)/ ? ($1 => 1) : () } @lines;
    my $bound = (keys %pids) * (int($seconds / 10) + 2);
    ok @lines >= 1 && @lines <= $bound,
        sprintf('the flood wrote %d AFF0009 warning line(s) in %.1f s from %d process(es) (at most %d)',
                scalar @lines, $seconds, scalar keys %pids, $bound);
}
