<?php
// t/php_session.t: a page that counts its requests in a PHP session.  Each
// member has its own session.save_path, so a request on the wrong member
// finds no session and starts over at 1.
session_start();
$_SESSION['n'] = ($_SESSION['n'] ?? 0) + 1;
header('X-Counter: ' . $_SESSION['n']);
header('X-Member: ' . getenv('AFFINITY_TEST_MEMBER'));
header('X-Session: ' . session_id());
echo $_SESSION['n'], "\n";
