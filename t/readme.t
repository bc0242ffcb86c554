# Every Apache configuration block of README.md and docs/*.md marked
# <!-- apache-test --> (and the files in conf/) passes `apache2 -t` with the
# module just built, and prints exactly the AFF warnings its marker names
# (none for most): an example that does not work as written fails the suite.
# Test names give the file and line of each block.
#
# Each block is wrapped in a minimal configuration of its own: a ServerRoot
# in t/logs, the modules an example may use, the fresh module in place of
# Debian's /usr/lib/apache2/modules/mod_affinity.so, ${APACHE_LOG_DIR} and
# DocumentRoots in a temporary folder, and every file:PATH salt created
# there.  Ports are left as written: -t binds none.
#
# Also: every relative link and #anchor in README.md, HACKING.md, docs/*.md
# and bench/results/*.md resolves (anchors as GitHub makes them from
# headings), and the README keeps what other tools read in it: the first
# example that t/package/run runs and the test command .ci/run runs.
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use File::Basename qw(basename);
use File::Spec;
use IO::Socket::INET;

my $httpd = Apache::Test::vars('httpd');
my $apxs = Apache::Test::vars('apxs');
chomp(my $libexec = `$apxs -q LIBEXECDIR`);
my $top = File::Spec->rel2abs(Apache::Test::vars('serverroot') . '/..');
my $module = "$top/.libs/mod_affinity.so";
my $dir = Apache::Test::vars('t_logs') . '/readme-t';
mkdir $dir;
mkdir "$dir/salts";

sub slurp { my $f = shift; open my $fh, '<', $f or die "$f: $!"; local $/; <$fh> }

# [name, text, expected tags]
my @blocks;
my @docs = ('README.md', map { "docs/" . basename($_) } sort glob("$top/docs/*.md"));
my ($n, $marked) = (0, 0);
for my $doc (@docs) {
    my $md = slurp("$top/$doc");
    # a marked block may be indented, inside a list item
    while ($md =~ /^([ \t]*)<!-- apache-test((?: AFF\d{4})*) -->\n\1```apache\n(.*?)^\1```$/msg) {
        my ($indent, $tags, $text) = ($1, $2, $3);
        my $line = 1 + (() = substr($md, 0, $-[0]) =~ /\n/g);
        $text =~ s/^\Q$indent\E//mg;
        push @blocks, ["$doc line $line", $text, [sort split ' ', $tags]];
        $n++;
    }
    $marked += () = $md =~ /^[ \t]*<!-- apache-test/mg;
}
push @blocks, ['conf/affinity-example.conf', slurp("$top/conf/affinity-example.conf"), []];
push @blocks, ['conf/affinity.load + conf/affinity.conf',
               slurp("$top/conf/affinity.load") . slurp("$top/conf/affinity.conf"), []];

# Links: [text](target) outside code, where target is not a URL
sub slug {
    my $h = lc shift;
    $h =~ s/`//g;
    $h =~ s/[^\w\- ]//g;
    $h =~ tr/ /-/;
    return $h;
}
my @linked = ('README.md', 'HACKING.md', @docs[1 .. $#docs],
              map { "bench/results/" . basename($_) } sort glob("$top/bench/results/*.md"));
my (%anchors, @links);
for my $doc (@linked) {
    my ($code, %seen, $lineno) = (0);
    for my $l (split /\n/, slurp("$top/$doc")) {
        $lineno++;
        if ($l =~ /^```/) { $code = !$code; next }
        next if $code;
        if ($l =~ /^#{1,6} (.*)/) {
            my $s = slug($1);
            my $k = $seen{$s}++;
            $anchors{$doc}{$k ? "$s-$k" : $s} = 1;
        }
        while ($l =~ /\]\(([^)\s]+)\)/g) {
            my $target = $1;
            next if $target =~ /^[a-z]+:/;
            push @links, [$doc, $lineno, $target];
        }
    }
}
my @broken;
for my $link (@links) {
    my ($doc, $lineno, $target) = @$link;
    my ($path, $frag) = split /#/, $target, 2;
    my $dir = $doc =~ m{^(.*)/} ? $1 : '.';
    my @parts;
    for my $p (split m{/}, $path eq '' ? $doc : "$dir/$path") {
        next if $p eq '.' || $p eq '';
        if ($p eq '..') { pop @parts } else { push @parts, $p }
    }
    my $file = join '/', @parts;
    if (!-e "$top/$file") {
        push @broken, "$doc:$lineno: $target: no file $file";
    }
    elsif (defined $frag && !$anchors{$file}{$frag}) {
        push @broken, "$doc:$lineno: $target: no heading #$frag in $file";
    }
}

plan tests => 4 + 2 * @blocks;

ok $n >= 5 && $n == $marked, "found $n marked blocks in @docs (every marker is followed by an apache block)";
ok @links >= 50 && !@broken, scalar(@links) . " relative links and anchors in @linked resolve"
    or diag join "\n", @broken;
my $readme = slurp("$top/README.md");
ok $readme =~ /<!-- first-example -->.*```apache\n.*<!-- \/first-example -->/s,
    "README.md keeps the first example t/package/run runs";
ok $readme =~ /^tools\/setup && make check/m, "README.md gives the test command .ci/run runs";

my $port = IO::Socket::INET->new(LocalAddr => '127.0.0.1', Listen => 1)->sockport;
my $i = 0;
for my $b (@blocks) {
    my ($name, $text, $expect) = @$b;
    $i++;
    $text =~ s{/usr/lib/apache2/modules/mod_affinity\.so}{$module}g;
    $text =~ s{/var/www/html}{$dir}g;
    $text =~ s{file:("?)([^\s"]+)}{
        my ($q, $path) = ($1, $2);
        my $salt = "$dir/salts/" . basename($path);
        open my $fh, '>', $salt or die; print $fh "pepper\n"; close $fh;
        "file:$q$salt"
    }ge;
    open my $bf, '>', "$dir/block$i.conf" or die;
    print $bf $text;
    close $bf;
    my @conf = (
        "ServerRoot \"$dir\"", 'ServerName localhost', "ErrorLog \"$dir/block$i.log\"",
        "PidFile \"$dir/block$i.pid\"", "Listen 127.0.0.1:$port", "Define APACHE_LOG_DIR $dir",
        (map { "LoadModule ${_}_module $libexec/mod_$_.so" }
             qw(mpm_event authz_core authz_host alias dir mime headers rewrite setenvif env
                proxy proxy_http proxy_balancer slotmem_shm lbmethod_byrequests
                socache_shmcb)),
        ($text =~ /^\s*LoadModule\s+affinity_module/m ? () : "LoadModule affinity_module $module"),
        "Include \"$dir/block$i.conf\"", '');
    open my $cf, '>', "$dir/wrap$i.conf" or die;
    print $cf join "\n", @conf;
    close $cf;
    my $out = `$httpd -t -f $dir/wrap$i.conf 2>&1`;
    my $rc = $? >> 8;
    ok $rc == 0 && $out =~ /Syntax OK/, "$name: apache2 -t says Syntax OK" or diag "$text\n$out";
    my %seen = map { $_ => 1 } $out =~ /(AFF\d{4})/g;
    is_deeply [sort keys %seen], $expect,
        "$name: " . (@$expect ? "warns @$expect, and only that" : 'no AFF warning') or diag $out;
}
