/* test_sigv4.c: unit tests for src/tls/sigv4.c.
 *
 * Known answers: "get-vanilla" and "get-vanilla-query-order-key-case" of
 * AWS's aws-sig-v4-test-suite, and two requests signed by botocore 1.29
 * (Debian's python3-botocore) as an independent implementation: one that
 * needs path normalisation, double encoding, query encoding and header
 * whitespace folding, and one S3 request (path as sent, UNSIGNED-PAYLOAD).
 * Also the Authorization parser's accepted and refused forms.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "tls/sigv4.h"

static const char SECRET[] = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
static const char EMPTY_SHA[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

#define H(n, v) { n, sizeof(n) - 1, v, sizeof(v) - 1 }

static void check(const char *target, const struct sigv4_header *h, size_t nh,
                  const char *service, const char *signed_headers, const char *payload,
                  enum sigv4_uri uri, const char *want)
{
    struct sigv4_auth a = { 0 };
    strcpy(a.akid, "AKIDEXAMPLE");
    strcpy(a.date, "20150830");
    strcpy(a.region, "us-east-1");
    strcpy(a.service, service);
    strcpy(a.signed_headers, signed_headers);
    struct sigv4_request r = { .method = "GET", .target = target, .headers = h, .nheaders = nh,
                               .payload_hash = payload, .amz_date = "20150830T123600Z" };
    char sig[65];
    assert_int_equal(sigv4_sign(&r, &a, uri, SECRET, strlen(SECRET), sig), 0);
    assert_string_equal(sig, want);
}

static void test_get_vanilla(void **state)
{
    (void)state;
    const struct sigv4_header h[] = { H("Host", "example.amazonaws.com"),
                                      H("X-Amz-Date", "20150830T123600Z") };
    check("/", h, 2, "service", "host;x-amz-date", EMPTY_SHA, SIGV4_URI_DOUBLE,
          "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
}

static void test_query_order(void **state)
{
    (void)state;
    const struct sigv4_header h[] = { H("X-Amz-Date", "20150830T123600Z"),
                                      H("host", "example.amazonaws.com") };
    check("/?Param2=value2&Param1=value1", h, 2, "service", "host;x-amz-date", EMPTY_SHA,
          SIGV4_URI_DOUBLE, "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
}

static void test_normalised_path_and_folded_header(void **state)
{
    (void)state;
    const struct sigv4_header h[] = { H("Host", "example.amazonaws.com"),
                                      H("My-Header", "  a   b  "),
                                      H("X-Amz-Date", "20150830T123600Z") };
    check("/a/./b/../c%20d//e?x=a%20b&y", h, 3, "service", "host;my-header;x-amz-date",
          EMPTY_SHA, SIGV4_URI_DOUBLE,
          "0387b1886145b51f9c1f4475e5d7023fb195850a256bd7a806364a4aa8c96d66");
}

static void test_s3_path_as_sent(void **state)
{
    (void)state;
    const struct sigv4_header h[] = { H("Host", "bucket.s3.amazonaws.com"),
                                      H("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
                                      H("X-Amz-Date", "20150830T123600Z") };
    check("/a/./b%20c?list-type=2", h, 3, "s3", "host;x-amz-content-sha256;x-amz-date",
          "UNSIGNED-PAYLOAD", SIGV4_URI_AS_SENT,
          "54c69ce213ef7f31495dfaf5c4f38d09f549b218bc841c80dcb744ab1a332657");
}

static void test_missing_signed_header_refused(void **state)
{
    (void)state;
    const struct sigv4_header h[] = { H("Host", "example.amazonaws.com") };
    struct sigv4_auth a = { .akid = "AKIDEXAMPLE", .date = "20150830", .region = "us-east-1",
                            .service = "service", .signed_headers = "host;x-amz-date" };
    struct sigv4_request r = { .method = "GET", .target = "/", .headers = h, .nheaders = 1,
                               .payload_hash = EMPTY_SHA, .amz_date = "20150830T123600Z" };
    char sig[65];
    assert_int_equal(sigv4_sign(&r, &a, SIGV4_URI_DOUBLE, SECRET, strlen(SECRET), sig), -1);
    /* a date outside the credential's scope */
    r.amz_date = "20150831T000000Z";
    const struct sigv4_header h2[] = { H("Host", "example.amazonaws.com"),
                                       H("X-Amz-Date", "20150831T000000Z") };
    r.headers = h2;
    r.nheaders = 2;
    assert_int_equal(sigv4_sign(&r, &a, SIGV4_URI_DOUBLE, SECRET, strlen(SECRET), sig), -1);
}

static void test_parse_auth(void **state)
{
    (void)state;
    static const char ok[] =
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, "
        "SignedHeaders=content-type;host;x-amz-date, "
        "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7";
    struct sigv4_auth a;
    assert_int_equal(sigv4_parse_auth(ok, strlen(ok), &a), SIGV4_HMAC);
    assert_string_equal(a.akid, "AKIDEXAMPLE");
    assert_string_equal(a.date, "20150830");
    assert_string_equal(a.region, "us-east-1");
    assert_string_equal(a.service, "iam");
    assert_string_equal(a.signed_headers, "content-type;host;x-amz-date");
    char back[1400];
    sigv4_format_auth(&a, back, sizeof(back));
    assert_string_equal(back, ok);
    /* fields in another order, no spaces after the commas */
    static const char reordered[] =
        "AWS4-HMAC-SHA256 Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7,"
        "SignedHeaders=host,Credential=fake_value_abc/20150830/eu-west-1/s3/aws4_request";
    assert_int_equal(sigv4_parse_auth(reordered, strlen(reordered), &a), SIGV4_HMAC);
    assert_string_equal(a.akid, "fake_value_abc");

    static const char *const bad[] = {
        "AWS4-HMAC-SHA256",
        "AWS4-HMAC-SHA256 Credential=A/20150830/r/s/aws4_request, SignedHeaders=host",
        "AWS4-HMAC-SHA256 Credential=A/2015083/r/s/aws4_request, SignedHeaders=host, "
        "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7",
        "AWS4-HMAC-SHA256 Credential=A/20150830/r/s/aws5_request, SignedHeaders=host, "
        "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7",
        "AWS4-HMAC-SHA256 Credential=A/20150830/r/s/aws4_request, SignedHeaders=Host, "
        "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7",
        "AWS4-HMAC-SHA256 Credential=A/20150830/r/s/aws4_request, SignedHeaders=host, "
        "Signature=5D672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7",
        "AWS4-HMAC-SHA256 Credential=A/20150830/r/s/aws4_request, SignedHeaders=host, "
        "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7, Extra=1",
        "AWS4-HMAC-SHA256 Credential=A/20150830/r/s/aws4_request, Credential=A/20150830/r/s/"
        "aws4_request, SignedHeaders=host, "
        "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7",
        "AWS4-HMAC-SHA256 Credential=A/B/20150830/r/s/aws4_request, SignedHeaders=host, "
        "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (sigv4_parse_auth(bad[i], strlen(bad[i]), &a) != SIGV4_MALFORMED)
            fail_msg("accepted: %s", bad[i]);
    assert_int_equal(sigv4_parse_auth("Bearer x", 8, &a), SIGV4_NONE);
    assert_int_equal(sigv4_parse_auth("AWS4-ECDSA-P256-SHA256 Credential=x", 35, &a), SIGV4_ECDSA);
}

static void test_presigned(void **state)
{
    (void)state;
    assert_true(sigv4_query_presigned("/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=a"));
    assert_true(sigv4_query_presigned("/b/k?a=1&x-amz-signature=00"));
    assert_false(sigv4_query_presigned("/b/k?list-type=2"));
    assert_false(sigv4_query_presigned("/b/X-Amz-Signature=1"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_vanilla),
        cmocka_unit_test(test_query_order),
        cmocka_unit_test(test_normalised_path_and_folded_header),
        cmocka_unit_test(test_s3_path_as_sent),
        cmocka_unit_test(test_missing_signed_header_refused),
        cmocka_unit_test(test_parse_auth),
        cmocka_unit_test(test_presigned),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
