<?php
// The FastCGI member of t/response_modes.t (php-cgi -b 127.0.0.1:PORT,
// AFFINITY_TEST_MEMBER naming it): a PHP session, whose new PHPSESSID the
// balancer prefixes (prefix mode) or learns (learn mode).  A URI holding
// "missing" answers 404, with the session cookie.
$member = getenv('AFFINITY_TEST_MEMBER');
session_start();
$_SESSION['n'] = ($_SESSION['n'] ?? 0) + 1;
header('X-Member: ' . $member);
header('X-Count: ' . $_SESSION['n']);
if (strpos($_SERVER['REQUEST_URI'], 'missing') !== false) {
    http_response_code(404);
    echo "no such page on $member\n";
    exit;
}
echo "served by $member, visit {$_SESSION['n']}\n";
