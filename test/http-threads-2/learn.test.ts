// test/learn.test.ts again, with HTTP_THREADS=2 (the import order matters: the setting comes first).
import '../helpers/http-threads-2';
import '../learn.test';
