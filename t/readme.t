# Every Apache configuration block of the README marked <!-- apache-test -->
# (and the files in conf/) passes `apache2 -t` with the module just built,
# and prints exactly the AFF warnings its marker names (none for most):
# an example that does not work as written fails the suite.
#
# Each block is wrapped in a minimal configuration of its own: a ServerRoot
# in t/logs, the modules an example may use, the fresh module in place of
# Debian's /usr/lib/apache2/modules/mod_affinity.so, ${APACHE_LOG_DIR} and
# DocumentRoots in a temporary folder, and every file:PATH salt created
# there.  Ports are left as written: -t binds none.
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
my $readme = slurp("$top/README.md");
my $n = 0;
while ($readme =~ /^<!-- apache-test((?: AFF\d{4})*) -->\n```apache\n(.*?)^```$/msg) {
    my ($tags, $text) = ($1, $2);
    my $line = 1 + (() = substr($readme, 0, $-[0]) =~ /\n/g);
    push @blocks, ["README.md line $line", $text, [sort split ' ', $tags]];
    $n++;
}
my @marked = $readme =~ /^<!-- apache-test/mg;
push @blocks, ['conf/affinity-example.conf', slurp("$top/conf/affinity-example.conf"), []];
push @blocks, ['conf/affinity.load + conf/affinity.conf',
               slurp("$top/conf/affinity.load") . slurp("$top/conf/affinity.conf"), []];

plan tests => 1 + 2 * @blocks;

ok $n >= 5 && $n == @marked, "found the README's $n marked blocks (every marker is followed by an apache block)";

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
                proxy proxy_http proxy_balancer slotmem_shm lbmethod_byrequests)),
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
