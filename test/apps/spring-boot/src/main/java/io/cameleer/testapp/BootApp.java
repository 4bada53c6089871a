package io.cameleer.testapp;

import org.apache.camel.builder.RouteBuilder;
import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.context.annotation.Bean;

/** A Spring Boot app whose Camel runs DemoRoutes (and LoadRoute and DeliveryRoutes) until it is killed. */
@SpringBootApplication
public class BootApp {
    @Bean
    RouteBuilder demoRoutes() {
        return new DemoRoutes();
    }

    @Bean
    RouteBuilder loadRoute() {
        return new LoadRoute();
    }

    @Bean
    RouteBuilder deliveryRoutes() {
        return new DeliveryRoutes();
    }

    public static void main(String[] args) throws InterruptedException {
        Health.serve("spring-boot");
        SpringApplication.run(BootApp.class, args);
        // No web server of Spring's keeps the JVM up; the test kills it.
        Thread.currentThread().join();
    }
}
