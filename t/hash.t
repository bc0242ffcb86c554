# Hash mode (AffinityMode hash EXPR, t/conf/hash.conf.in): weighted rendezvous
# hashing of an httpd expression's value.
#   hashhdr   X-Tenant header; growth=2: a member added live
#   hashaddr  the client address; hashqs the query string
#   hashenv   an environment variable set by SetEnvIf
# Every block restores what it changed.
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use Apache::TestRequest;
use LWP::UserAgent ();
use lib 't/lib';
use AffinityTest;

plan tests => 21;

my @ua = map { LWP::UserAgent->new(keep_alive => 1, timeout => 30) } 1 .. 2;
my $turn = 0;
sub get {
    my ($path, %headers) = @_;
    my $r = $ua[$turn++ % @ua]->get(Apache::TestRequest::resolve_url($path), %headers);
    die "$path: " . $r->status_line . "\n" unless $r->code == 200;
    return $r;
}

my @tenants = map { "tenant-$_" } 1 .. 150;

# tenant => backend, one request each
sub map_tenants {
    my %m;
    for my $t (@tenants) {
        my $r = get('/hashhdr/hello.txt', 'X-Tenant' => $t);
        die "$t: Set-Cookie in hash mode\n" if defined $r->header('Set-Cookie');
        $m{$t} = backend($r);
    }
    return \%m;
}
sub counts {
    my ($m) = @_;
    my %n;
    $n{$_}++ for values %$m;
    return join ', ', map { "$_=$n{$_}" } sort keys %n;
}
sub moves {
    my ($from, $to) = @_;
    return map { "$_ $from->{$_}->$to->{$_}" } grep { $from->{$_} ne $to->{$_} } @tenants;
}
sub same_map {
    my ($base, $now, $name) = @_;
    my @m = moves($base, $now);
    ok !@m, $name or diag scalar(@m) . ' keys differ: ' . join(', ', @m[0 .. ($#m < 5 ? $#m : 5)]);
}
sub edit {
    my ($member, %params) = @_;
    bm_post('hashhdr', w => member_url($member), %params);
}

# ---- a header -----------------------------------------------------------------
my $base = map_tenants();
{
    my %n;
    $n{$_}++ for values %$base;
    ok +(grep { ($n{"backend$_"} // 0) >= 30 } 1 .. 3) == 3,
       'X-Tenant: 150 keys spread over the 3 members (' . counts($base) . ')';
    same_map($base, map_tenants(), 'mapped again: every key on the same member');
    # many connections: every child agrees
    my @split = grep { my $t = $_; grep { backend(fetch('/hashhdr/hello.txt', 'X-Tenant' => $t)) ne $base->{$t} } 1 .. 3 }
                @tenants[0 .. 19];
    ok !@split, 'fresh connections (other children): same members' or diag "@split";
}

# "%{HTTP:X-Tenant}" alone is read directly, not evaluated: the same members
# as the evaluated expression (tolower of lowercase keys) and as the direct
# read spelled "%{req:x-tenant}"; the expression still lowercases
{
    my (@expr, @req);
    for my $t (@tenants[0 .. 59]) {
        my $e = backend(get('/hashexpr/hello.txt', 'X-Tenant' => $t));
        push @expr, "$t $e!=$base->{$t}" if $e ne $base->{$t};
        push @req, $t if backend(get('/hashreq/hello.txt', 'X-Tenant' => $t)) ne $base->{$t};
    }
    ok !@expr && !@req, 'the header read directly and through an expression: same members for 60 keys'
        or diag "tolower: @expr; req: @req";
    my @upper = grep { backend(get('/hashexpr/hello.txt', 'X-Tenant' => uc $_)) ne $base->{$_} } @tenants[0 .. 29];
    ok !@upper, 'the expression is still evaluated: "%{tolower:...}" of 30 uppercase keys' or diag "@upper";
}

# status hash, the route ID logged, the key never
{
    fetch('/hashhdr/hello.txt?hash-logged', 'X-Tenant' => 'secret-tenant-42');
    ok wait_until(5, sub { grep { m{^/hashhdr/hello\.txt\?hash-logged 200 status=hash route=[0-9a-f]{40} } }
                                log_lines('affinity_log') }),
       'logged: AFFINITY_STATUS=hash with the member\'s route ID';
    unlike error_log_text(), qr/secret-tenant-42/, 'the key is not in the error log (trace2)';
}

# ---- the status page's ?key=: where a key goes, the key never echoed --------------
{
    my @wrong;
    for my $t (@tenants[0 .. 19]) {
        my $body = Apache::TestRequest::GET_BODY("/affinity-status?format=json&key=$t");
        my ($member) = $body =~ m{"key":\{"balancers":\[.*?\{"balancer":"balancer://hashhdr","member":"([^"]+)"};
        push @wrong, "$t: " . ($member // 'none') unless ($member // '') eq member_url($base->{$t});
        push @wrong, "$t echoed" if index($body, $t) >= 0;
    }
    ok !@wrong, '?key=: the member each of 20 keys goes to, as requests found; the key not shown'
        or diag join '; ', @wrong[0 .. ($#wrong < 5 ? $#wrong : 5)];
    my $html = Apache::TestRequest::GET_BODY('/affinity-status?key=tenant-1');
    ok $html =~ /<h2>Key<\/h2>/ && index($html, 'tenant-1') < 0, 'HTML: a Key section, the key not shown';
}

# ---- an empty key: a new visitor, byrequests' choice ----------------------------
{
    my %seen;
    $seen{ backend(get('/hashhdr/hello.txt?hash-empty')) }++ for 1 .. 9;
    is keys(%seen), 3, 'no X-Tenant: spread as byrequests spreads (' . join(',', sort keys %seen) . ')';
    ok wait_until(5, sub { grep { m{^/hashhdr/hello\.txt\?hash-empty 200 status=new route=[0-9a-f]{40} } }
                                log_lines('affinity_log') }),
       'logged: AFFINITY_STATUS=new';
}

# ---- the client address, the query string, an environment variable -----------
{
    my %seen;
    $seen{ backend(fetch('/hashaddr/hello.txt')) }++ for 1 .. 12;
    is keys(%seen), 1, 'REMOTE_ADDR: every request from 127.0.0.1 on one member';

    my (%q, @split);
    for my $i (1 .. 60) {
        my %m;
        $m{ backend(get("/hashqs/hello.txt?u=$i")) }++ for 1 .. 3;
        push @split, $i if keys %m != 1;
        $q{ (keys %m)[0] }++;
    }
    ok !@split && keys(%q) == 3, 'QUERY_STRING: each query on one member, 60 queries on all 3 ('
        . join(', ', map { "$_=$q{$_}" } sort keys %q) . ')' or diag "split: @split";

    my (%e, @esplit);
    for my $i (1 .. 60) {
        my %m;
        $m{ backend(get('/hashenv/hello.txt', 'X-User' => ($i % 2 ? "User$i" : "user$i"))) }++;
        $m{ backend(get('/hashenv/hello.txt', 'X-User' => "USER$i")) }++;
        push @esplit, $i if keys %m != 1;
        $e{ (keys %m)[0] }++;
    }
    ok !@esplit && keys(%e) == 3, 'SetEnvIf variable, lowercased: one member per user whatever the case, all 3 used'
        or diag "split: @esplit";
}

# ---- drain and live edits: only that member's keys move -----------------------
for my $case (['N', 'backend3', 'drained'], ['D', 'backend2', 'disabled']) {
    my ($flag, $b, $what) = @$case;
    edit($b, "w_status_$flag" => 1);
    my $now = map_tenants();
    my @wrong = grep { !/ \Q$b\E->/ } moves($base, $now);
    ok !(grep { $_ eq $b } values %$now) && !@wrong,
       "$b $what: it gets no key and no other key moved (" . counts($now) . ')'
        or diag join ', ', @wrong[0 .. ($#wrong < 5 ? $#wrong : 5)];
    edit($b, "w_status_$flag" => 0);
    same_map($base, map_tenants(), "$b back: every key exactly where it was");
}

# ---- a member added live: about 1/(N+1) of the keys move, all to it -------------
{
    my $url = member_url('backend4');
    bm_post('hashhdr', b_wyes => 1, b_nwrkr => $url)
        unless grep { $_->{name} eq $url } @{ bm_members('hashhdr') };
    like member_status('hashhdr', $url) // '', qr/\bDis\b/, 'backend4 added, disabled';
    edit('backend4', w_status_D => 0);
    my $now = map_tenants();
    my @m = moves($base, $now);
    my @wrong = grep { !/->backend4$/ } @m;
    ok !@wrong && @m >= 20 && @m <= 60,
       scalar(@m) . ' of 150 keys moved, all to backend4 (ideal 37, 1/(N+1))'
        or diag join ', ', @wrong[0 .. ($#wrong < 5 ? $#wrong : 5)];
    edit('backend4', w_status_D => 1);
    same_map($base, map_tenants(), 'backend4 disabled again: every key back');
}
