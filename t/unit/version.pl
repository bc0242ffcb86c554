#!/usr/bin/perl
# The version lives in configure.ac's AC_INIT.  debian/changelog (the
# package's version) and affinity_version.h (what a bare apxs build logs as
# AFF0020) must say the same, or the package and the log would lie.
use strict;
use warnings;
use Test::More tests => 6;
use File::Basename qw(dirname);

my $top = $ENV{TOP} || dirname(dirname(dirname(__FILE__)));

sub slurp {
    my ($f) = @_;
    open my $fh, '<', "$top/$f" or die "cannot read $top/$f: $!\n";
    local $/;
    return <$fh>;
}

my ($ac) = slurp('configure.ac') =~ /^AC_INIT\(\[mod_affinity\],\s*\[([^\]]+)\]/m;
ok defined $ac, "configure.ac: AC_INIT has a version" or $ac = '';
like $ac, qr/^\d+\.\d+\.\d+(?:[~+][0-9A-Za-z.]+)?$/, "configure.ac: '$ac' looks like X.Y.Z";

like slurp('configure.ac'), qr/-DAFFINITY_VERSION=.*\$PACKAGE_VERSION/,
    'configure.ac passes its version to the C build';

my ($deb) = slurp('debian/changelog') =~ /^libapache2-mod-affinity \(([^)]+)\)/;
is $deb, $ac, 'debian/changelog: the top entry has the configure.ac version';

my ($h) = slurp('affinity_version.h') =~ /^#define AFFINITY_VERSION "([^"]+)"/m;
is $h, $ac, 'affinity_version.h: the fallback has the configure.ac version';

# whichever C file holds post_config (the module is being split into several)
my @logs = grep { slurp($_) =~ /"AFF0020: mod_affinity " AFFINITY_VERSION " loaded"/ }
    map { s{^\Q$top\E/}{}r } glob("$top/*.c");
is scalar(@logs), 1, "one C file logs AFF0020 with AFFINITY_VERSION (@logs)";
