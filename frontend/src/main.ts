import { createApp } from 'vue'
import { createPinia } from 'pinia'
import App from './App.vue'
import { captureSessionToken } from './api/session'
import { createAppI18n } from './i18n'
import { createAppRouter } from './router'
import './style.css'

// Web mode: move ?session=… into sessionStorage before the router reads the URL.
captureSessionToken()

createApp(App).use(createPinia()).use(createAppI18n()).use(createAppRouter()).mount('#app')
