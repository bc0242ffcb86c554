package AffinityResponse;
# Helpers of the response tests (t/response.t, t/websocket.t, t/errors.t):
# members that are not httpd, and a raw websocket handshake.

use strict;
use warnings FATAL => 'all';

use Exporter 'import';
use IO::Socket::INET ();
use IO::Select ();
use POSIX ();
use Apache::Test ();
use Apache::TestRequest ();

our @EXPORT = qw(conf_port start_member wait_port upgrade_request access_line);

# A port of response.conf.in's (or $file.conf.in's) "Define NAME
# @NextAvailablePort@", read back from the generated configuration.
sub conf_port {
    my ($name, $file) = @_;
    my $conf = Apache::Test::vars('t_conf') . '/' . ($file // 'response') . '.conf';
    open my $fh, '<', $conf or die "$conf: $!\n";
    while (my $line = <$fh>) {
        return $1 if $line =~ /^\s*Define\s+\Q$name\E\s+(\d+)/;
    }
    die "no Define $name in $conf\n";
}

sub wait_port {
    my ($port, $seconds) = @_;
    for (1 .. $seconds * 20) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                      Proto => 'tcp', Timeout => 1);
        if ($s) { close $s; return 1 }
        select(undef, undef, undef, 0.05);
    }
    return 0;
}

# Starts a member process (killed by the returned guard, and in any case
# by `timeout` after $lifetime seconds) and waits for its ports.
sub start_member {
    my ($lifetime, $env, $ports, @cmd) = @_;
    my $pid = fork // die "fork: $!\n";
    if (!$pid) {
        POSIX::setsid();
        # the members are not under test: no sanitizer runtime that
        # tools/reliability asan-suite preloads into the suite (php-cgi's
        # extensions cannot be loaded with it)
        delete @ENV{qw(LD_PRELOAD ASAN_OPTIONS UBSAN_OPTIONS)};
        @ENV{keys %$env} = values %$env;
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', '/dev/null';
        exec 'timeout', '-k', '2', $lifetime, @cmd or POSIX::_exit(127);
    }
    for my $port (@$ports) {
        wait_port($port, 15) or die "member @cmd did not listen on $port\n";
    }
    return AffinityResponse::Guard->new($pid);
}

# A websocket opening handshake through httpd: (status, [header lines]).
sub upgrade_request {
    my ($path, @extra) = @_;
    my ($host, $port) = split /:/, Apache::TestRequest::hostport();
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp', Timeout => 10)
        or die "connect: $!\n";
    print $s join("\r\n", "GET $path HTTP/1.1", "Host: $host",
                  'Upgrade: websocket', 'Connection: Upgrade',
                  'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
                  'Sec-WebSocket-Version: 13', @extra, '', '');
    my ($buf, $sel) = ('', IO::Select->new($s));
    my $deadline = time + 10;
    while ($buf !~ /\r\n\r\n/ && time < $deadline) {
        next unless $sel->can_read(1);
        my $n = sysread $s, $buf, 4096, length $buf;
        last unless $n;
    }
    close $s;
    my ($head) = split /\r\n\r\n/, $buf, 2;
    my ($status_line, @lines) = split /\r\n/, $head // '';
    my ($status) = ($status_line // '') =~ m{^HTTP/1\.\d (\d{3})};
    return ($status // 0, \@lines);
}

# The access-log line (format "affinity") of the request whose URL and
# query are $url, once it is written.
sub access_line {
    my ($url, $seconds) = @_;
    my $line;
    for (1 .. ($seconds // 10) * 10) {
        ($line) = grep { /^\Q$url\E / } AffinityTest::log_lines('affinity_log');
        return $line if $line;
        select(undef, undef, undef, 0.1);
    }
    return '';
}

package AffinityResponse::Guard;

sub new { my ($class, $pid) = @_; return bless { pid => $pid }, $class }

sub DESTROY {
    my $self = shift;
    kill 'TERM', -$self->{pid};
    waitpid $self->{pid}, 0;
}

1;
