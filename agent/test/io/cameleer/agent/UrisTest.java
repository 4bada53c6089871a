package io.cameleer.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

class UrisTest {
    @Test
    void credentialsRemoved() {
        assertEquals("ftp://host:21/in?password=***&binary=true&accessKey=***",
                Uris.sanitize("ftp://bob:s3cret@host:21/in?password=s3cret&binary=true&accessKey=AKIA1"));
        assertEquals("aws2-s3://bucket?secretKey=***&region=eu-west-1",
                Uris.sanitize("aws2-s3://bucket?secretKey=xyz&region=eu-west-1"));
        assertEquals("timer://orders?period=200", Uris.sanitize("timer://orders?period=200"));
        assertEquals("kafka:t?saslJaasConfig=x&sslKeystorePassword=***",
                Uris.sanitize("kafka:t?saslJaasConfig=x&sslKeystorePassword=pw"));
    }
}
