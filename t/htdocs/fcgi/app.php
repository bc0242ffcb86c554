<?php
// The FastCGI member of t/response.t: php-cgi -b 127.0.0.1:PORT, started
// with AFFINITY_TEST_MEMBER naming it.  /missing answers 404.
$member = getenv('AFFINITY_TEST_MEMBER');
header('X-Member: ' . $member);
if (strpos($_SERVER['REQUEST_URI'], 'missing') !== false) {
    http_response_code(404);
    echo "no such page on $member\n";
    exit;
}
echo "served by $member\n";
