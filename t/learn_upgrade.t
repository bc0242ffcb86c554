# Learn mode across the change of store keys (HMAC-SHA1 up to 0.1.0,
# SipHash-2-4-128 since), on a private front end (t/lib/LearnHarness.pm)
# with memcached and with Redis, started here on free 127.0.0.1 ports:
#   - a session learned now is stored under the new key, computed here from
#     the documented rule (docs/modes.md), so two front ends of this version
#     agree with each other and with this test;
#   - an entry written under the OLD key (computed here as 0.1.0 did it,
#     with Digest::SHA's hmac_sha1) is still found: the request goes to that
#     member with status valid, the entry is rewritten under the new key,
#     and once the old entry is gone the session is found by the new key
#     alone; for a cookie and for a header (header:NAME) carrier;
#   - a member's deletion of a session found under the old key removes the
#     old entry (and writes no new one).
# Runs in the suite's event pass only (it starts its own front end).
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use Digest::SHA qw(hmac_sha1);
use File::Spec;
use File::Path qw(remove_tree);
use IO::Socket::INET;
use Time::HiRes qw(sleep time);
use lib 't/lib';
use LearnHarness;

my $mpm = Apache::Test::config()->{server}{mpm} // '';
my @stores = ((LearnHarness::have_memcached() ? 'memcache' : ()),
              (LearnHarness::have_redis() ? 'redis' : ()));
if ($mpm ne 'event') {
    plan skip_all => 'runs its own front end: once, in the event pass';
}
if (!@stores) {
    plan skip_all => 'neither memcached nor redis-server is installed (tools/setup installs them)';
}
plan tests => 1 + 14 * @stores;

my $module = File::Spec->rel2abs(Apache::Test::vars('serverroot') . '/../.libs/mod_affinity.so');
my $top = File::Spec->rel2abs(Apache::Test::vars('t_logs') . '/learn-upgrade');
remove_tree($top);
my $RUN = "$$-" . int(rand(1e6));
my $SALT = 'shared-salt';                   # LearnHarness's default
my $BALANCER = 'balancer://app';
my (@started, @daemons);
END {
    my $rc = $?;                            # waitpid on the killed store sets $?
    LearnHarness::stop($_) for @started;
    LearnHarness::stop_store($_) for @daemons;
    $? = $rc;
}

# ---- the keys, as docs/modes.md states them ------------------------------------

# SipHash-2-4 with a 128-bit output (the reference implementation's
# siphash(..., 16)), on 64-bit integers that wrap
sub siphash128 {
    my ($key, $msg) = @_;
    use integer;
    no warnings 'portable';                 # 64-bit constants
    my ($k0, $k1) = unpack 'q<q<', $key;
    my @v = ($k0 ^ 0x736f6d6570736575, $k1 ^ 0x646f72616e646f6d ^ 0xee,
             $k0 ^ 0x6c7967656e657261, $k1 ^ 0x7465646279746573);
    my $rotl = sub { my ($x, $b) = @_; ($x << $b) | (($x >> (64 - $b)) & ((1 << $b) - 1)) };
    my $round = sub {
        $v[0] += $v[1]; $v[1] = $rotl->($v[1], 13); $v[1] ^= $v[0]; $v[0] = $rotl->($v[0], 32);
        $v[2] += $v[3]; $v[3] = $rotl->($v[3], 16); $v[3] ^= $v[2];
        $v[0] += $v[3]; $v[3] = $rotl->($v[3], 21); $v[3] ^= $v[0];
        $v[2] += $v[1]; $v[1] = $rotl->($v[1], 17); $v[1] ^= $v[2]; $v[2] = $rotl->($v[2], 32);
    };
    my $len = length $msg;
    my $full = $len - $len % 8;
    for (my $i = 0; $i < $full; $i += 8) {
        my $m = unpack 'q<', substr($msg, $i, 8);
        $v[3] ^= $m; $round->(); $round->(); $v[0] ^= $m;
    }
    my $m = unpack 'q<', substr($msg, $full) . ("\0" x (7 - $len % 8)) . chr($len & 0xff);
    $v[3] ^= $m; $round->(); $round->(); $v[0] ^= $m;
    $v[2] ^= 0xee;
    $round->() for 1 .. 4;
    my $out = pack 'q<', $v[0] ^ $v[1] ^ $v[2] ^ $v[3];
    $v[1] ^= 0xdd;
    $round->() for 1 .. 4;
    return $out . pack('q<', $v[0] ^ $v[1] ^ $v[2] ^ $v[3]);
}

# what the keys hash: balancer NUL [NUL kind NUL] value
sub key_input {
    my ($kind, $value) = @_;
    return "$BALANCER\0" . (defined $kind ? "\0$kind\0" : '') . $value;
}
sub new_key {
    my ($kind, $value) = @_;
    my $secret = substr(hmac_sha1('mod_affinity learn key siphash-2-4', $SALT), 0, 16);
    return siphash128($secret, key_input($kind, $value));
}
sub old_key {
    my ($kind, $value) = @_;
    return hmac_sha1(key_input($kind, $value), $SALT);
}

{
    # the reference implementation's vectors.h, vectors_sip128[15]
    my $got = unpack 'H*', siphash128(pack('C*', 0 .. 15), pack('C*', 0 .. 14));
    is($got, '5493e99933b0a8117e08ec0f97cfc3d9', "this test's SipHash-2-4-128 gives the reference vector");
}

# ---- the stores, spoken to directly ---------------------------------------------

sub store_cmd {
    my ($st, $raw) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $st->{port},
                                  Proto => 'tcp', Timeout => 5) or die "store: $!";
    print $s $raw;
    my ($buf, $got) = ('', '');
    my $end = time + 5;
    # every answer used here ends with CRLF after its last part
    while (time < $end) {
        my $n = sysread($s, $buf, 65536);
        last if !$n;
        $got .= $buf;
        last if $st->{kind} eq 'redis' ? resp_done($got) : $got =~ /(?:END|STORED|DELETED|NOT_FOUND|ERROR)\r\n\z/;
    }
    close $s;
    return $got;
}
sub resp_done {
    my ($g) = @_;
    return 0 unless $g =~ /\r\n/;
    return 1 if $g =~ /^[+\-:]/;
    return $g =~ /^\$(-?\d+)\r\n/ && ($1 < 0 || length($g) >= length("\$$1\r\n") + $1 + 2);
}
sub resp { my @a = @_; return '*' . @a . "\r\n" . join('', map { '$' . length($_) . "\r\n$_\r\n" } @a) }

# the store's text key of a binary key (mod_socache_*: "affinity:" + hex;
# older mod_socache_memcache wrote the hex in capitals)
sub text_key { my ($st, $k) = @_; my $h = unpack 'H*', $k; return 'affinity:' . ($st->{upper} ? uc $h : $h) }

sub store_get {
    my ($st, $k) = @_;
    my $key = text_key($st, $k);
    if ($st->{kind} eq 'redis') {
        my $a = store_cmd($st, resp('GET', $key));
        return $a =~ /^\$(\d+)\r\n/ ? substr($a, length("\$$1\r\n"), $1) : undef;
    }
    my $a = store_cmd($st, "get $key\r\n");
    return $a =~ /^VALUE \S+ \d+ (\d+)\r\n/ ? substr($a, length($&), $1) : undef;
}
sub store_set {
    my ($st, $k, $data) = @_;
    my $key = text_key($st, $k);
    if ($st->{kind} eq 'redis') {
        return store_cmd($st, resp('SET', $key, $data, 'EX', 600)) =~ /^\+OK/;
    }
    return store_cmd($st, "set $key 0 600 " . length($data) . "\r\n$data\r\n") =~ /^STORED/;
}
sub store_del {
    my ($st, $k) = @_;
    my $key = text_key($st, $k);
    return store_cmd($st, $st->{kind} eq 'redis' ? resp('DEL', $key) : "delete $key\r\n");
}

# ---- each store -------------------------------------------------------------------

sub get { LearnHarness::get(@_) }
sub backend { LearnHarness::backend($_[0]) }
sub st { LearnHarness::status($_[0]) }

for my $kind (@stores) {
    my $store = LearnHarness::start_store($kind, "$top/$kind-daemon");
    push @daemons, $store;
    my $fe = LearnHarness::frontend(module => $module, dir => "$top/$kind-cookie",
                                    mpm => 'event', store => $store->{spec},
                                    # the local tier would answer for the
                                    # store: this test reads the store
                                    extra => ['AffinityStoreLocal 0']);
    my $hfe = LearnHarness::frontend(module => $module, dir => "$top/$kind-header",
                                     mpm => 'event', store => $store->{spec},
                                     cookie => 'header:Sid',
                                     extra => ['AffinityStoreLocal 0']);
    push @started, $fe, $hfe;
    ok(LearnHarness::start($fe) && LearnHarness::start($hfe), "$kind: two front ends (cookie SID, header Sid) start")
        or diag $LearnHarness::LAST_ERROR;

    # a session learned now: where its entry is, and the member's ID bytes
    my $seed = "seed-$RUN";
    LearnHarness::learn_session($fe, $seed, 'm2');
    my $entry;
    for my $upper (0, 1) {
        $store->{upper} = $upper;
        $entry = store_get($store, new_key(undef, $seed));
        last if defined $entry;
    }
    ok(defined $entry && length($entry) == 28,
       "$kind: a session learned now is stored under SipHash-2-4-128 of balancer NUL value")
        or diag 'no entry under ', text_key($store, new_key(undef, $seed));
    my $m2 = defined $entry ? substr($entry, 0, 20) : "\0" x 20;

    for my $carrier ([cookie => undef, $fe], [header => 'header', $hfe]) {
        my ($what, $kindword, $f) = @$carrier;
        my $send = sub { $what eq 'cookie' ? (Cookie => "SID=$_[0]") : (Sid => $_[0]) };
        # a value that, without an entry, hashes to another member than m2
        my $value;
        for my $i (1 .. 40) {
            my $c = "old$i-$what-$RUN";
            my $r = get($f, '/app/hello.txt', $send->($c));
            if (st($r) eq 'unknown' && backend($r) ne 'm2') {
                $value = $c;
                last;
            }
        }
        $value //= "old-$what-$RUN";
        # the entry as 0.1.0 wrote it: old key, m2's ID, written now
        ok(store_set($store, old_key($kindword, $value), $m2 . pack('Q>', int(time))),
           "$kind, $what: an entry written under the old HMAC-SHA1 key");
        my $r = get($f, '/app/hello.txt', $send->($value));
        ok(backend($r) eq 'm2' && st($r) eq 'valid',
           "$kind, $what: it is found: the request goes to its member (valid)")
            or diag 'went to ', backend($r), ' with status ', st($r);
        my $new;
        my $end = time + 2;
        until (defined($new = store_get($store, new_key($kindword, $value))) || time > $end) {
            sleep 0.1;
        }
        ok(defined $new && substr($new, 0, 20) eq $m2,
           "$kind, $what: and rewritten under the new key, naming the same member");
        store_del($store, old_key($kindword, $value));
        my @r = map { get($f, '/app/hello.txt', $send->($value)) } 1 .. 3;
        ok(!grep({ backend($_) ne 'm2' || st($_) ne 'valid' } @r),
           "$kind, $what: with the old entry gone, the new key alone keeps the session");
        ok(!defined store_get($store, old_key($kindword, $value)),
           "$kind, $what: nothing is written under the old key");
    }

    # the member ends a session found under the old key (a cookie's
    # deletion): its entry goes, and no new one is made
    my $del = "del-$RUN";
    store_set($store, old_key(undef, $del), $m2 . pack('Q>', int(time)));
    my $r = get($fe, '/app/hello.txt', Cookie => "SID=$del", 'X-Set1' => 'SID=; Max-Age=0');
    ok(backend($r) eq 'm2' && !defined store_get($store, old_key(undef, $del))
       && !defined store_get($store, new_key(undef, $del)),
       "$kind: a deletion of a session found under the old key removes that entry, and writes none")
        or diag 'went to ', backend($r);
    is(st(get($fe, '/app/hello.txt', Cookie => "SID=$del")), 'unknown',
       "$kind: the value is then unknown");
    LearnHarness::stop($_) for $fe, $hfe;
}
